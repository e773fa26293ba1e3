using System.Diagnostics;
using System.Text.RegularExpressions;
using ModelCompression.Torch.Native;

namespace ModelCompression.Torch.Tests.Native;

public sealed partial class ElfImageTests
{
    private const string NewVersion = "GLIBCXX_3.4.32";
    private const string IosBaseInit = "_ZSt21ios_base_library_initv";

    [Fact]
    public void Reads_the_version_needs_of_libLibTorchSharp()
    {
        var image = ElfImage.Load(NativeTestFiles.LibTorchSharp());

        var needed = image.VersionNeeds.Where(n => n.File == "libstdc++.so.6").Select(n => n.Version).ToList();
        Assert.Contains(NewVersion, needed);
        Assert.Contains("GLIBCXX_3.4", needed);
        Assert.Contains("CXXABI_1.3", needed);
        Assert.Contains(image.VersionNeeds, n => n.File == "libc.so.6" && n.Version == "GLIBC_2.2.5");
        Assert.All(image.VersionNeeds, n => Assert.False(n.IsWeak));
        // Version indexes are unique across the section (they key .gnu.version).
        Assert.Equal(image.VersionNeeds.Count, image.VersionNeeds.Select(n => n.Index).Distinct().Count());
    }

    [Fact]
    public void Only_ios_base_library_init_needs_GLIBCXX_3_4_32()
    {
        var image = ElfImage.Load(NativeTestFiles.LibTorchSharp());
        var need = Assert.Single(image.VersionNeeds, n => n.Version == NewVersion);

        Assert.Equal([IosBaseInit], image.SymbolsNeeding(need));
        // Sanity: a version that does a lot of work has many users.
        var base34 = Assert.Single(image.VersionNeeds, n => n.Version == "GLIBCXX_3.4");
        Assert.True(image.SymbolsNeeding(base34).Count > 10);
    }

    [Fact]
    public void Version_needs_match_readelf_when_it_is_installed()
    {
        var path = NativeTestFiles.LibTorchSharp();
        var output = RunReadelf(path);
        if (output is null)
        {
            return; // binutils is not installed: the other tests still check the reader against known facts.
        }

        var fromReadelf = ReadelfNeed().Matches(output).Select(m => (m.Groups[1].Value, m.Groups[2].Value == "WEAK")).ToHashSet();
        var ours = ElfImage.Load(path).VersionNeeds.Select(n => (n.Version, n.IsWeak)).ToHashSet();
        Assert.NotEmpty(fromReadelf);
        Assert.Equal(fromReadelf.OrderBy(x => x.Item1), ours.OrderBy(x => x.Item1));
    }

    [Fact]
    public void Patched_copy_differs_only_in_the_weak_flag_and_the_original_is_untouched()
    {
        var path = NativeTestFiles.LibTorchSharp();
        var hashBefore = NativeTestFiles.Sha256(path);
        var original = File.ReadAllBytes(path);
        var image = ElfImage.Read(original);
        var target = Assert.Single(image.VersionNeeds, n => n.Version == NewVersion);

        var patched = image.WithWeakVersions([NewVersion]);

        Assert.Equal(original.Length, patched.Length);
        var differing = Enumerable.Range(0, original.Length).Where(i => original[i] != patched[i]).ToList();
        // vna_flags is little-endian: 0 -> 2 changes its low byte only.
        Assert.Equal([(int)target.FlagsOffset], differing);

        var reread = ElfImage.Read(patched);
        Assert.Equal(image.VersionNeeds.Count, reread.VersionNeeds.Count);
        foreach (var (before, after) in image.VersionNeeds.Zip(reread.VersionNeeds))
        {
            Assert.Equal((before.File, before.Version, before.Index), (after.File, after.Version, after.Index));
            Assert.Equal(before.Version == NewVersion, after.IsWeak);
        }

        Assert.Equal(hashBefore, NativeTestFiles.Sha256(path));
        Assert.Equal(original, File.ReadAllBytes(path));
    }

    [Fact]
    public void Patching_a_version_the_library_does_not_need_is_refused()
    {
        var image = ElfImage.Load(NativeTestFiles.LibTorchSharp());
        Assert.Throws<ArgumentException>(() => image.WithWeakVersions(["GLIBCXX_9.9.9"]));
    }

    [Theory]
    [InlineData(new byte[] { 1, 2, 3 })]
    [InlineData(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0 })]
    public void Non_elf64_bytes_are_rejected(byte[] bytes)
    {
        var padded = bytes.Concat(new byte[64]).ToArray();
        Assert.Throws<InvalidDataException>(() => ElfImage.Read(padded));
    }

    [Fact]
    public void A_truncated_library_is_rejected_not_misread()
    {
        var bytes = File.ReadAllBytes(NativeTestFiles.LibTorchSharp());
        Assert.Throws<InvalidDataException>(() => ElfImage.Read(bytes[..(bytes.Length / 2)]));
    }

    private static string? RunReadelf(string path)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("readelf", ["-V", "-W", path])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            });
            if (process is null)
            {
                return null;
            }

            var output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return process.ExitCode == 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    // "  0x0140:   Name: GLIBCXX_3.4.32  Flags: none  Version: 18"
    [GeneratedRegex(@"Name: (\S+)\s+Flags: (\S+)\s+Version: \d+")]
    private static partial Regex ReadelfNeed();
}
