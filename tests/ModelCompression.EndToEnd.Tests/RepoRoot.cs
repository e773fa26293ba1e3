namespace ModelCompression.EndToEnd.Tests;

/// <summary>Finds the repository checkout the tests were built from.</summary>
internal static class RepoRoot
{
    public static string Find()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "ModelCompression.sln")))
            {
                return folder.FullName;
            }
        }

        throw new InvalidOperationException("ModelCompression.sln not found above " + AppContext.BaseDirectory);
    }
}
