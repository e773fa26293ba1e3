using System.IO.Compression;
using Microsoft.ML.OnnxRuntime;

// The student model was produced by `dotnet build` (see fashion.compress.yaml) and copied next to this app.
var modelPath = Path.Combine(AppContext.BaseDirectory, "fashion.student.onnx");
string[] classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

var images = ReadIdx(Path.Combine(AppContext.BaseDirectory, "data", "t10k-images-idx3-ubyte.gz"), headerInts: 4);
var labels = ReadIdx(Path.Combine(AppContext.BaseDirectory, "data", "t10k-labels-idx1-ubyte.gz"), headerInts: 2);
const int Pixels = 28 * 28;
var count = labels.Length;

using var session = new InferenceSession(modelPath);
var input = session.InputMetadata.Keys.First();
var inputs = new float[count * Pixels];
for (var i = 0; i < inputs.Length; i++)
{
    inputs[i] = images[i] / 255f;
}

// Feed the shape the model declares (the built-in student keeps the data's [28, 28] images; a PyTorch model
// may want [1, 28, 28]), with the batch axis as the image count.
long[] shape = [count, .. session.InputMetadata[input].Dimensions.Skip(1).Select(d => (long)d)];
using var tensor = OrtValue.CreateTensorValueFromMemory(inputs, shape);
using var results = session.Run(new RunOptions(), [input], [tensor], [session.OutputMetadata.Keys.First()]);
var logits = results[0].GetTensorDataAsSpan<float>();
var correct = 0;
for (var i = 0; i < count; i++)
{
    var row = logits.Slice(i * classes.Length, classes.Length);
    var predicted = row.IndexOf(MaxOf(row));
    correct += predicted == labels[i] ? 1 : 0;
    if (i < 5)
    {
        Console.WriteLine($"image {i}: predicted {classes[predicted],-12} actual {classes[labels[i]]}");
    }
}

Console.WriteLine($"Student accuracy on {count} test images: {100.0 * correct / count:F2}% ({new FileInfo(modelPath).Length / 1024} KB model)");

static float MaxOf(ReadOnlySpan<float> values)
{
    var max = float.NegativeInfinity;
    foreach (var value in values)
    {
        max = Math.Max(max, value);
    }

    return max;
}

// IDX: big-endian int32 header (magic, dimensions), then unsigned bytes.
static byte[] ReadIdx(string path, int headerInts)
{
    using var stream = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
    using var memory = new MemoryStream();
    stream.CopyTo(memory);
    return memory.ToArray()[(headerInts * 4)..];
}
