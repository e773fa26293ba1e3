using ModelCompression.Architectures;
using ModelCompression.Data;
using ModelCompression.Evaluation;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Quantization;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Evaluation;

public sealed class CostTests
{
    private static ModelProto Mlp() =>
        ArchitectureRegistry.Build("mlp", new MlpOptions { Hidden = [64] }, new ArchitectureInputs([28, 28], 10));

    private static ModelProto Cnn() =>
        ArchitectureRegistry.Build("cnn", new CnnOptions(), new ArchitectureInputs([28, 28], 10));

    /// <summary><paramref name="count"/> blank 28x28 images (the shapes, not the values, set the FLOPs).</summary>
    private static Dataset Images(int count) => new(new float[count * 784], [28, 28], null, "blank images");

    [Fact]
    public void FLOPs_of_the_built_in_MLP_are_2_m_k_n_per_Gemm()
    {
        // 784 -> 64 -> 10 at batch 1: 2*784*64 + 2*64*10 = 100352 + 1280.
        Assert.Equal(101_632, FlopsEstimator.Estimate(Mlp(), Images(1)));
    }

    [Fact]
    public void FLOPs_of_the_built_in_CNN_count_both_convolutions_and_the_classifier()
    {
        // Default CNN on 28x28: conv 1->32 3x3 'same' at 28x28: 2*32*1*9*28*28 = 451584; max-pool to 14x14;
        // conv 32->64 3x3 at 14x14: 2*64*32*9*14*14 = 7225344; global average pool; Gemm 64->10: 2*64*10 = 1280.
        Assert.Equal(451_584 + 7_225_344 + 1_280, FlopsEstimator.Estimate(Cnn(), Images(1)));
    }

    [Fact]
    public void A_dynamically_quantized_MLP_costs_the_FLOPs_of_its_float_original()
    {
        var (quantized, _) = DynamicQuantizer.Quantize(Mlp(), perChannel: true);

        Assert.Contains(quantized.Graph.Node, n => n.OpType == "MatMulInteger");
        Assert.Equal(101_632, FlopsEstimator.Estimate(quantized, Images(1)));
    }

    [Fact]
    public void FLOPs_estimate_needs_one_sample()
    {
        Assert.Throws<ArgumentException>(() => FlopsEstimator.Estimate(Mlp(), Images(2)));
    }

    [Theory]
    // Grouped, strided Conv: Y [1, 8, 5, 5], W [8, 2, 3, 3] (Cin 4, group 2): 2 * 200 * (2*3*3) = 7200.
    [InlineData("Conv", new[] { "x", "w" }, 7200)]
    // QLinearConv takes its weight as input 3.
    [InlineData("QLinearConv", new[] { "x", "xs", "xz", "w" }, 7200)]
    // ConvTranspose: every input element meets Cout/group * kernel weights: X [1, 4, 5, 5], W [4, 3, 2, 2]: 2 * 100 * 12.
    [InlineData("ConvTranspose", new[] { "x", "wt" }, 2400)]
    // MatMul with a batch axis: A [3, 2, 7] x B [7, 5] = Y [3, 2, 5]: 2 * 30 * 7.
    [InlineData("MatMul", new[] { "a", "b" }, 420)]
    [InlineData("MatMulInteger", new[] { "a", "b" }, 420)]
    [InlineData("QLinearMatMul", new[] { "a", "as", "az", "b" }, 420)]
    // Elementwise and pooling ops are not counted.
    [InlineData("Relu", new[] { "x" }, 0)]
    public void FLOPs_of_one_node_from_its_shapes(string opType, string[] inputs, long expected)
    {
        var shapes = new Dictionary<string, long[]>
        {
            ["x"] = [1, 4, 7, 7],
            ["w"] = [8, 2, 3, 3],
            ["wt"] = [4, 3, 2, 2],
            ["a"] = [3, 2, 7],
            ["b"] = [7, 5],
            ["y"] = opType switch
            {
                "ConvTranspose" => [1, 3, 6, 6],
                "MatMul" or "MatMulInteger" or "QLinearMatMul" => [3, 2, 5],
                _ => [1, 8, 5, 5],
            },
        };
        var node = new NodeProto { OpType = opType };
        node.Input.AddRange(inputs);
        node.Output.Add("y");
        if (opType == "ConvTranspose")
        {
            shapes["x"] = [1, 4, 5, 5];
        }

        Assert.Equal(expected, FlopsEstimator.NodeFlops(node, shapes));
    }

    [Theory]
    [InlineData(0)] // A [1, 64]: K = 64.
    [InlineData(1)] // transA, A [64, 1]: K = 64.
    public void FLOPs_of_Gemm_take_K_from_A_and_transA(int transA)
    {
        var node = new NodeProto { OpType = "Gemm" };
        node.Input.AddRange(["a", "b", "c"]);
        node.Output.Add("y");
        node.Attribute.Add(Attr.Int("transA", transA));
        var shapes = new Dictionary<string, long[]> { ["a"] = transA == 1 ? [64, 1] : [1, 64], ["b"] = [10, 64], ["y"] = [1, 10] };

        Assert.Equal(2 * 1 * 10 * 64, FlopsEstimator.NodeFlops(node, shapes));
    }

    [Fact]
    public void Parameters_of_the_MLP_are_all_non_zero_and_pruned_weights_are_not()
    {
        var model = Mlp();
        Assert.Equal((784L * 64 + 64 + (64 * 10) + 10, 784L * 64 + 64 + (64 * 10) + 10), ParameterCount.Count(model));

        // Zero 1000 weights of fc1, as magnitude pruning would.
        var fc1 = model.Graph.Initializer.Single(t => t.Name == "fc1.weight");
        var values = TensorData.ToFloats(fc1);
        Array.Clear(values, 0, 1000);
        values[1000] = -0.0f;
        model.Graph.Initializer[model.Graph.Initializer.IndexOf(fc1)] = TensorData.FromFloats("fc1.weight", values, [.. fc1.Dims]);

        Assert.Equal((784L * 64 + 64 + (64 * 10) + 10, 784L * 64 + 64 + (64 * 10) + 10 - 1001), ParameterCount.Count(model));
    }

    [Fact]
    public void Zeros_in_the_CNN_are_its_zero_initialised_biases_and_running_means()
    {
        var model = Cnn();
        var (parameters, nonZero) = ParameterCount.Count(model);

        // Zero at initialisation: bn.bias and bn.running_mean of both blocks (32 + 64, twice) and classifier.bias (10).
        // The Reshape target [0, 1, 28, 28] is a Constant node, not an initializer: not a parameter.
        Assert.Equal(model.Graph.Initializer.Sum(t => TensorData.ElementCount(t)), parameters);
        Assert.Equal(parameters - ((32 + 64) * 2) - 10, nonZero);
    }

    [Fact]
    public void Quantized_weights_count_by_their_stored_elements()
    {
        var graph = new GraphProto();
        graph.Initializer.Add(TensorData.FromInt8s("q", [0, 1, -1, 0, 5], [5]));
        graph.Initializer.Add(TensorData.FromUInt8s("zp", [0, 128], [2]));
        graph.Initializer.Add(TensorData.FromHalves("h", [(Half)0, (Half)(-0.0f), (Half)2], [3]));
        graph.Initializer.Add(TensorData.FromDoubles("d", [0, 1e-300], [2]));
        // int4, two per byte, low nibble first: elements 0, 3, 0 (the last high nibble unused).
        graph.Initializer.Add(TensorData.FromBytes("i4", DataType.Int4, [0x30, 0x00], [3]));
        var model = new ModelProto { Graph = graph };

        Assert.Equal((5L + 2 + 3 + 2 + 3, 3L + 1 + 1 + 1 + 1), ParameterCount.Count(model));
    }
}
