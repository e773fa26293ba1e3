using ModelCompression.Architectures;
using ModelCompression.Stages;

namespace ModelCompression.Core.Tests.Stages;

public sealed class TeacherInitializationTests
{
    [Theory]
    [InlineData("encoder.layer1.attention.query.weight", "encoder.layer3.attention.query.weight")]
    [InlineData("encoder.layer0.feed_forward.fc1.bias", "encoder.layer1.feed_forward.fc1.bias")]
    [InlineData("encoder.layers.1.linear1.weight", "encoder.layers.3.linear1.weight")]
    [InlineData("token_embedding.weight", "token_embedding.weight")]
    [InlineData("encoder.layer2.attention.query.weight", null)]
    public void A_layer_map_renames_the_layer_number_only(string student, string? teacher)
    {
        Assert.Equal(teacher, TeacherInitialization.TeacherName(student, [1, 3]));
    }

    [Fact]
    public void A_two_layer_student_takes_every_other_layer_of_a_four_layer_teacher()
    {
        var inputs = new ArchitectureInputs([16], 3, VocabSize: 50);
        var teacher = ArchitectureRegistry.Build("transformer", new TransformerOptions { Width = 32, Heads = 2, Layers = 4, FeedForward = 64, Seed = 7 }, inputs);
        var student = ArchitectureRegistry.Build("transformer", new TransformerOptions { Width = 32, Heads = 2, Layers = 2, FeedForward = 64, Seed = 8 }, inputs);

        var (initialized, copied) = TeacherInitialization.Apply(student, teacher, [1, 3]);

        var teacherWeights = teacher.Graph.Initializer.ToDictionary(t => t.Name);
        var before = student.Graph.Initializer.ToDictionary(t => t.Name);
        var after = initialized.Graph.Initializer.ToDictionary(t => t.Name);
        Assert.Equal(before.Keys, after.Keys);
        Assert.Equal(teacherWeights["encoder.layer1.attention.query.weight"].RawData, after["encoder.layer0.attention.query.weight"].RawData);
        Assert.Equal(teacherWeights["encoder.layer3.feed_forward.fc2.weight"].RawData, after["encoder.layer1.feed_forward.fc2.weight"].RawData);
        Assert.NotEqual(before["encoder.layer0.attention.query.weight"].RawData, after["encoder.layer0.attention.query.weight"].RawData);
        // Every float initializer of this student has a teacher twin of the same shape; the input is unchanged.
        Assert.Equal(student.Graph.Initializer.Count(t => teacherWeights.ContainsKey(TeacherInitialization.TeacherName(t.Name, [1, 3])!)), copied.Count);
        Assert.Contains("encoder.layer1.attention.output.bias", copied);
        Assert.Equal(before["encoder.layer0.attention.query.weight"], student.Graph.Initializer.Single(t => t.Name == "encoder.layer0.attention.query.weight"));
    }

    [Fact]
    public void Initializers_of_another_shape_are_left_alone()
    {
        var inputs = new ArchitectureInputs([16], 3, VocabSize: 50);
        var teacher = ArchitectureRegistry.Build("transformer", new TransformerOptions { Width = 32, Heads = 2, Layers = 2, FeedForward = 64 }, inputs);
        var narrow = ArchitectureRegistry.Build("transformer", new TransformerOptions { Width = 16, Heads = 2, Layers = 2, FeedForward = 32 }, inputs);

        var (initialized, copied) = TeacherInitialization.Apply(narrow, teacher, null);

        Assert.DoesNotContain("encoder.layer0.attention.query.weight", copied);
        var teacherShapes = teacher.Graph.Initializer.ToDictionary(t => t.Name, t => string.Join(",", t.Dims));
        Assert.All(narrow.Graph.Initializer.Zip(initialized.Graph.Initializer), pair =>
        {
            var sameShapeInTeacher = teacherShapes.TryGetValue(pair.First.Name, out var shape) && shape == string.Join(",", pair.First.Dims);
            Assert.Equal(sameShapeInTeacher, copied.Contains(pair.First.Name));
            if (!sameShapeInTeacher)
            {
                Assert.Equal(pair.First, pair.Second);
            }
        });
    }
}
