// Every test here packs the package or the tool and builds or installs it with the real dotnet CLI: minutes, not
// seconds. The whole assembly is left out of the fast set (dotnet test --filter "Category!=Slow").
[assembly: AssemblyTrait("Category", "Slow")]
