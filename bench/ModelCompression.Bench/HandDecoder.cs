using ModelCompression.Architectures;
using ModelCompression.Torch;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompression.Bench;

/// <summary>
/// DecoderBuilder's graph (learned positions, GELU, dropout 0, tied head) as a TorchSharp user writes a GPT:
/// embeddings, pre-LayerNorm layers with causal attention (a fixed lower-triangular buffer times the padding mask,
/// turned into an additive -10000 bias), a final LayerNorm and <c>linear(x, embedding.weight)</c> as the head.
/// </summary>
internal sealed class HandDecoder : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    private readonly Embedding embedding;
    private readonly Embedding position_embedding;
    private readonly ModuleList<HandDecoderLayer> layers;
    private readonly LayerNorm final_norm;
    private readonly Tensor causal;
    private readonly int _layerCount;

    public HandDecoder(DecoderOptions options, int vocabulary, int maxLength)
        : base("hand_decoder")
    {
        if (options.Positions != PositionEncoding.Learned || options.Activation != Activation.Gelu || !options.TieEmbeddings || options.Dropout != 0)
        {
            throw new ArgumentException("The hand-written decoder is GPT-2's shape: learned positions, GELU, tied head, no dropout.", nameof(options));
        }

        embedding = nn.Embedding(vocabulary, options.Width);
        position_embedding = nn.Embedding(maxLength, options.Width);
        layers = nn.ModuleList([.. Enumerable.Range(0, options.Layers).Select(_ => new HandDecoderLayer(options.Width, options.Heads, options.FeedForward))]);
        final_norm = nn.LayerNorm(options.Width);
        causal = torch.ones(maxLength, maxLength).tril();
        _layerCount = options.Layers;
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids, Tensor mask, Tensor positions)
    {
        var length = ids.shape[1];
        var x = embedding.forward(ids).Plus(position_embedding.forward(positions));
        var allowed = causal.narrow(0, 0, length).narrow(1, 0, length).mul(mask.to_type(ScalarType.Float32).unsqueeze(1).unsqueeze(1));
        var scoreBias = allowed.Plus(-1.0).Times(10000);
        foreach (var layer in layers)
        {
            x = layer.forward(x, scoreBias);
        }

        return nn.functional.linear(final_norm.forward(x), embedding.weight!);
    }

    /// <summary>Copies the ONNX initializers in (MatMul weights are stored [in, out], nn.Linear's [out, in]).</summary>
    public void CopyFrom(IReadOnlyDictionary<string, Parameter> onnx)
    {
        using var noGrad = torch.no_grad();
        embedding.weight!.copy_(onnx["embedding.weight"]);
        position_embedding.weight!.copy_(onnx["position_embedding.weight"]);
        for (var i = 0; i < _layerCount; i++)
        {
            layers[i].CopyFrom(onnx, $"decoder.layer{i}");
        }

        Norm(final_norm, onnx, "decoder.final_norm");
    }

    internal static void Norm(LayerNorm norm, IReadOnlyDictionary<string, Parameter> onnx, string name)
    {
        norm.weight!.copy_(onnx[$"{name}.weight"]);
        norm.bias!.copy_(onnx[$"{name}.bias"]);
    }
}

internal sealed class HandDecoderLayer : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly LayerNorm attention_norm;
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
    private readonly Linear output;
    private readonly LayerNorm feed_forward_norm;
    private readonly Linear fc1;
    private readonly GELU gelu;
    private readonly Linear fc2;
    private readonly int _heads;
    private readonly int _headWidth;
    private readonly double _scale;

    public HandDecoderLayer(int width, int heads, int feedForward)
        : base("layer")
    {
        attention_norm = nn.LayerNorm(width);
        query = nn.Linear(width, width);
        key = nn.Linear(width, width);
        value = nn.Linear(width, width);
        output = nn.Linear(width, width);
        feed_forward_norm = nn.LayerNorm(width);
        fc1 = nn.Linear(width, feedForward);
        gelu = nn.GELU();
        fc2 = nn.Linear(feedForward, width);
        _heads = heads;
        _headWidth = width / heads;
        _scale = 1 / Math.Sqrt(_headWidth);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor scoreBias)
    {
        var (batch, length, width) = (x.shape[0], x.shape[1], x.shape[2]);
        var h = attention_norm.forward(x);
        var q = query.forward(h).view(batch, length, _heads, _headWidth).permute(0, 2, 1, 3);
        var k = key.forward(h).view(batch, length, _heads, _headWidth).permute(0, 2, 3, 1);
        var v = value.forward(h).view(batch, length, _heads, _headWidth).permute(0, 2, 1, 3);
        var probabilities = q.matmul(k).Times(_scale).Plus(scoreBias).softmax(-1);
        var context = probabilities.matmul(v).permute(0, 2, 1, 3).reshape(batch, length, width);
        x = x.Plus(output.forward(context));
        return x.Plus(fc2.forward(gelu.forward(fc1.forward(feed_forward_norm.forward(x)))));
    }

    public void CopyFrom(IReadOnlyDictionary<string, Parameter> onnx, string layer)
    {
        HandDecoder.Norm(attention_norm, onnx, $"{layer}.attention_norm");
        Copy(query, onnx, $"{layer}.attention.query");
        Copy(key, onnx, $"{layer}.attention.key");
        Copy(value, onnx, $"{layer}.attention.value");
        Copy(output, onnx, $"{layer}.attention.output");
        HandDecoder.Norm(feed_forward_norm, onnx, $"{layer}.feed_forward_norm");
        Copy(fc1, onnx, $"{layer}.feed_forward.fc1");
        Copy(fc2, onnx, $"{layer}.feed_forward.fc2");
    }

    private static void Copy(Linear linear, IReadOnlyDictionary<string, Parameter> onnx, string name)
    {
        linear.weight!.copy_(onnx[$"{name}.weight"].t());
        linear.bias!.copy_(onnx[$"{name}.bias"]);
    }
}
