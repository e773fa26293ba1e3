using ModelCompression.Core.Tests.Data;
using ModelCompression.Onnx;
using ModelCompression.Pipeline;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>
/// The memo of input hashes: a later run takes a file's hash from the memo only while the file's size and time of
/// writing are what they were, and a damaged memo costs a recomputation, never a wrong hash or a crash.
/// </summary>
public sealed class HashMemoTests : IDisposable
{
    private static readonly DateTime Past = new(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc);
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_later_run_takes_an_unchanged_models_hash_from_the_memo()
    {
        var teacher = CopyTeacher();
        var cache = _dir.Dir("cache");
        var expected = ModelHash.ComputeFile(teacher);

        var first = HashMemo.Load(cache);
        Assert.Equal(expected, HashTeacher(first, teacher, out var computed));
        Assert.True(computed);
        first.Save();
        Assert.True(File.Exists(Path.Join(cache, HashMemo.FileName)));

        // A new process (a new memo loaded from the file) does not read the model again.
        Assert.Equal(expected, HashTeacher(HashMemo.Load(cache), teacher, out computed));
        Assert.False(computed);
    }

    [Fact]
    public void A_touched_file_is_hashed_again()
    {
        var teacher = CopyTeacher();
        var cache = _dir.Dir("cache");
        var memo = HashMemo.Load(cache);
        HashTeacher(memo, teacher, out _);
        memo.Save();

        File.SetLastWriteTimeUtc(teacher, Past.AddSeconds(1));

        Assert.Equal(ModelHash.ComputeFile(teacher), HashTeacher(HashMemo.Load(cache), teacher, out var computed));
        Assert.True(computed);
    }

    [Fact]
    public void A_same_size_edit_with_a_new_time_gives_the_new_hash()
    {
        var labels = CopyData("t10k-labels-idx1-ubyte.gz");
        var images = CopyData("t10k-images-idx3-ubyte.gz");
        var spec = DataRecipe.Spec(_dir, $"format: idx\ntrain: {{ inputs: {images}, labels: {labels} }}\ntest: {{ inputs: {images}, labels: {labels} }}");
        var cache = _dir.Dir("cache");
        var memo = HashMemo.Load(cache);
        var before = DataHashing.HashData(spec, memo);
        Assert.Equal(DataHashing.HashData(spec), before);
        memo.Save();
        Assert.Equal(before, DataHashing.HashData(spec, HashMemo.Load(cache)));

        // One byte of the labels file changes; the size stays, the time of writing moves on.
        var bytes = File.ReadAllBytes(labels);
        bytes[^5] ^= 0xFF;
        File.WriteAllBytes(labels, bytes);
        File.SetLastWriteTimeUtc(labels, Past.AddMinutes(1));

        var after = DataHashing.HashData(spec, HashMemo.Load(cache));
        Assert.NotEqual(before, after);
        Assert.Equal(DataHashing.HashData(spec), after);
    }

    [Fact]
    public void An_edit_of_a_models_external_data_file_alone_is_seen()
    {
        var model = _dir.File("external/teacher.onnx");
        Directory.CreateDirectory(Path.GetDirectoryName(model)!);
        OnnxModelFile.Save(OnnxModelFile.Load(Repo.Teacher), model, new OnnxSaveOptions { ExternalData = ExternalDataMode.Always });
        var side = Directory.GetFiles(Path.GetDirectoryName(model)!).Single(f => f != model);
        File.SetLastWriteTimeUtc(model, Past);
        File.SetLastWriteTimeUtc(side, Past);
        var cache = _dir.Dir("cache");
        var memo = HashMemo.Load(cache);
        var before = HashTeacher(memo, model, out _);
        memo.Save();

        // One weight's byte changes in the side file; the model file itself is untouched.
        var bytes = File.ReadAllBytes(side);
        bytes[^3] ^= 0x40;
        File.WriteAllBytes(side, bytes);
        File.SetLastWriteTimeUtc(side, Past.AddMinutes(1));

        var after = HashTeacher(HashMemo.Load(cache), model, out var computed);
        Assert.True(computed);
        Assert.NotEqual(before, after);
        Assert.Equal(ModelHash.ComputeFile(model), after);
    }

    [Theory]
    [InlineData("{ \"Version\": 1, \"Entries\": { \"model x\": ")]
    [InlineData("\0\0\0garbage")]
    [InlineData("{ \"Version\": 1, \"Entries\": { \"model x\": { \"Hash\": null, \"Files\": null } } }")]
    [InlineData("[]")]
    public void A_damaged_memo_means_hashing_again_not_a_crash(string damaged)
    {
        var teacher = CopyTeacher();
        var cache = _dir.Dir("cache");
        var memo = HashMemo.Load(cache);
        HashTeacher(memo, teacher, out _);
        memo.Save();
        File.WriteAllText(Path.Join(cache, HashMemo.FileName), damaged);

        var again = HashMemo.Load(cache);
        Assert.Equal(ModelHash.ComputeFile(teacher), HashTeacher(again, teacher, out var computed));
        Assert.True(computed);

        // The damaged memo is replaced by a good one.
        again.Save();
        HashTeacher(HashMemo.Load(cache), teacher, out computed);
        Assert.False(computed);
    }

    [Fact]
    public void A_deleted_file_is_never_answered_from_the_memo()
    {
        var teacher = CopyTeacher();
        var cache = _dir.Dir("cache");
        var memo = HashMemo.Load(cache);
        HashTeacher(memo, teacher, out _);
        memo.Save();
        File.Delete(teacher);

        // The memo never answers for a file that is gone: the hash is recomputed and fails as a missing model does.
        Assert.ThrowsAny<Exception>(() => HashTeacher(HashMemo.Load(cache), teacher, out _));
    }

    [Fact]
    public void A_file_written_just_now_is_remembered_by_this_process_only()
    {
        var teacher = CopyTeacher();
        File.SetLastWriteTimeUtc(teacher, DateTime.UtcNow);
        var cache = _dir.Dir("cache");
        var memo = HashMemo.Load(cache);
        HashTeacher(memo, teacher, out _);

        HashTeacher(memo, teacher, out var computed);
        Assert.False(computed);
        memo.Save();
        HashTeacher(HashMemo.Load(cache), teacher, out computed);
        Assert.True(computed);
    }

    private static string HashTeacher(HashMemo memo, string path, out bool computed)
    {
        var ran = false;
        var hash = memo.Get($"model {path}", () =>
        {
            ran = true;
            return (ModelHash.ComputeFile(path, out var files), files);
        });
        computed = ran;
        return hash;
    }

    private string CopyTeacher()
    {
        var path = _dir.File("teacher.onnx");
        File.Copy(Repo.Teacher, path, overwrite: true);
        File.SetLastWriteTimeUtc(path, Past);
        return path;
    }

    private string CopyData(string name)
    {
        var path = _dir.File(name);
        File.Copy(Repo.SampleData(name), path);
        File.SetLastWriteTimeUtc(path, Past);
        return path;
    }
}
