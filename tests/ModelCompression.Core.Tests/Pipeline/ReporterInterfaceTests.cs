using ModelCompression.Common;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>The front ends implement the reporter interface; it must not make them import the training library.</summary>
public sealed class ReporterInterfaceTests
{
    [Fact]
    public void The_reporter_interface_and_its_records_name_no_training_library_type()
    {
        var methods = typeof(IPipelineReporter).GetMethods();
        var types = methods.SelectMany(m => m.GetParameters().Select(p => p.ParameterType).Append(m.ReturnType)).Distinct().ToList();
        types.AddRange(types.SelectMany(t => t.GetProperties().Select(p => p.PropertyType)).ToList());

        Assert.Contains(typeof(TrainingProgressInfo), types);
        Assert.All(types, t => Assert.False(t.Namespace?.StartsWith("ModelCompression.Torch", StringComparison.Ordinal) ?? false, $"{t.FullName} is a training library type"));
    }
}
