using System.Buffers.Binary;
using System.Text;

namespace ModelCompression.Torch.Native;

/// <summary>One version a shared library needs from another (an entry of <c>.gnu.version_r</c>).</summary>
/// <param name="File">The library the version is needed from, e.g. <c>libstdc++.so.6</c>.</param>
/// <param name="Version">The version name, e.g. <c>GLIBCXX_3.4.32</c>.</param>
/// <param name="Flags">The entry's <c>vna_flags</c> (0x2 is VER_FLG_WEAK).</param>
/// <param name="Index">The version index (<c>vna_other</c>) that <c>.gnu.version</c> uses for symbols bound to it.</param>
/// <param name="FlagsOffset">File offset of the entry's 16-bit <c>vna_flags</c> field.</param>
public sealed record ElfVersionNeed(string File, string Version, ushort Flags, ushort Index, long FlagsOffset)
{
    /// <summary>The VER_FLG_WEAK bit of <c>vna_flags</c>: a missing weak version is not an error for the loader.</summary>
    public const ushort WeakFlag = 0x2;

    /// <summary>Whether the VER_FLG_WEAK bit is set.</summary>
    public bool IsWeak => (Flags & WeakFlag) != 0;
}

/// <summary>
/// A minimal reader (and patcher) of 64-bit little-endian ELF shared libraries: just the symbol versioning
/// sections, which is what deciding "will this library load against that libstdc++" needs. Pure managed
/// code; it never loads the library.
/// </summary>
public sealed class ElfImage
{
    private const uint ShtDynsym = 11;
    private const uint ShtGnuVerdef = 0x6ffffffd;
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const uint ShtGnuVersym = 0x6fffffff;

    private readonly byte[] _bytes;
    private readonly List<Section> _sections;

    private ElfImage(byte[] bytes, string? path)
    {
        _bytes = bytes;
        Path = path;
        _sections = ReadSections();
        VersionNeeds = ReadVersionNeeds();
        VersionDefinitions = ReadVersionDefinitions();
    }

    /// <summary>The file the image was read from, when it was read from a file.</summary>
    public string? Path { get; }

    /// <summary>Every entry of <c>.gnu.version_r</c>, in file order (empty when the section is absent).</summary>
    public IReadOnlyList<ElfVersionNeed> VersionNeeds { get; }

    /// <summary>The version names the library defines (<c>.gnu.version_d</c>), e.g. GLIBCXX_3.4.30 (empty when absent).</summary>
    public IReadOnlyList<string> VersionDefinitions { get; }

    /// <summary>Reads a library from disk.</summary>
    /// <exception cref="InvalidDataException">The file is not a 64-bit little-endian ELF file or is malformed.</exception>
    public static ElfImage Load(string path) => new(File.ReadAllBytes(path), path);

    /// <summary>Reads a library from its bytes (the array is kept, not copied: do not change it afterwards).</summary>
    /// <exception cref="InvalidDataException">The bytes are not a 64-bit little-endian ELF file or are malformed.</exception>
    public static ElfImage Read(byte[] bytes) => new(bytes, null);

    /// <summary>
    /// Names of the undefined dynamic symbols bound to the version index <paramref name="index"/>
    /// (from <c>.gnu.version</c> and <c>.dynsym</c>): the symbols that need that version.
    /// </summary>
    public IReadOnlyList<string> UndefinedSymbolsWithVersionIndex(ushort index)
    {
        var dynsym = _sections.FirstOrDefault(s => s.Type == ShtDynsym);
        var versym = _sections.FirstOrDefault(s => s.Type == ShtGnuVersym);
        if (dynsym is null || versym is null)
        {
            return [];
        }

        var strtab = SectionAt(dynsym.Link);
        const int symSize = 24;
        // One 16-bit .gnu.version entry per .dynsym symbol; never read past the shorter of the two.
        var count = (int)Math.Min(dynsym.Size / symSize, versym.Size / 2);
        var result = new List<string>();
        for (var i = 0; i < count; i++)
        {
            var sym = checked((int)(dynsym.Offset + (ulong)(i * symSize)));
            var shndx = U16(sym + 6);
            var ver = (ushort)(U16(checked((int)versym.Offset) + (i * 2)) & 0x7fff);
            if (shndx == 0 && ver == index && i != 0)
            {
                result.Add(ReadString(strtab, U32(sym)));
            }
        }

        return result;
    }

    /// <summary>The undefined dynamic symbols that need <paramref name="need"/>.</summary>
    public IReadOnlyList<string> SymbolsNeeding(ElfVersionNeed need) => UndefinedSymbolsWithVersionIndex(need.Index);

    /// <summary>
    /// A copy of the file's bytes with VER_FLG_WEAK set on the <c>.gnu.version_r</c> entries named in
    /// <paramref name="versions"/> (of any needed file). Every other byte is unchanged; this image is not changed.
    /// </summary>
    /// <exception cref="ArgumentException">A version is not needed by this library.</exception>
    public byte[] WithWeakVersions(IEnumerable<string> versions)
    {
        var copy = (byte[])_bytes.Clone();
        foreach (var version in versions)
        {
            var entries = VersionNeeds.Where(n => n.Version == version).ToList();
            if (entries.Count == 0)
            {
                throw new ArgumentException($"The library does not need version '{version}'.", nameof(versions));
            }

            foreach (var entry in entries)
            {
                var at = checked((int)entry.FlagsOffset);
                var flags = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(copy.AsSpan(at)) | ElfVersionNeed.WeakFlag);
                BinaryPrimitives.WriteUInt16LittleEndian(copy.AsSpan(at), flags);
            }
        }

        return copy;
    }

    private List<Section> ReadSections()
    {
        if (_bytes.Length < 64 || _bytes[0] != 0x7f || _bytes[1] != (byte)'E' || _bytes[2] != (byte)'L' || _bytes[3] != (byte)'F')
        {
            throw new InvalidDataException("Not an ELF file.");
        }

        if (_bytes[4] != 2 || _bytes[5] != 1)
        {
            throw new InvalidDataException("Only 64-bit little-endian ELF files are supported.");
        }

        var shoff = U64(0x28);
        var shentsize = U16(0x3a);
        var shnum = U16(0x3c);
        if (shoff == 0 || shnum == 0)
        {
            throw new InvalidDataException("The ELF file has no section headers.");
        }

        if (shentsize < 64 || shoff + ((ulong)shnum * shentsize) > (ulong)_bytes.Length)
        {
            throw new InvalidDataException("The ELF section header table is malformed or truncated.");
        }

        var sections = new List<Section>(shnum);
        for (var i = 0; i < shnum; i++)
        {
            var at = (int)(shoff + ((ulong)i * shentsize));
            var section = new Section(U32(at + 4), U64(at + 24), U64(at + 32), U32(at + 40), U32(at + 44));
            if (section.Type != 8 /* SHT_NOBITS */ && section.Offset + section.Size > (ulong)_bytes.Length)
            {
                throw new InvalidDataException($"ELF section {i} lies outside the file.");
            }

            sections.Add(section);
        }

        return sections;
    }

    private List<ElfVersionNeed> ReadVersionNeeds()
    {
        var result = new List<ElfVersionNeed>();
        var section = _sections.FirstOrDefault(s => s.Type == ShtGnuVerneed);
        if (section is null)
        {
            return result;
        }

        var strtab = SectionAt(section.Link);
        var end = section.Offset + section.Size;
        var at = section.Offset;
        // sh_info holds the number of entries; vn_next chains them. Bound by both to survive bad files.
        for (var n = 0; n < section.Info; n++)
        {
            CheckRange(at, 16, end);
            var file = ReadString(strtab, U32((int)at + 4));
            var count = U16((int)at + 2);
            var aux = at + U32((int)at + 8);
            for (var k = 0; k < count; k++)
            {
                CheckRange(aux, 16, end);
                var flags = U16((int)aux + 4);
                var index = U16((int)aux + 6);
                var name = ReadString(strtab, U32((int)aux + 8));
                result.Add(new ElfVersionNeed(file, name, flags, index, (long)aux + 4));
                var nextAux = U32((int)aux + 12);
                if (nextAux == 0)
                {
                    break;
                }

                aux += nextAux;
            }

            var next = U32((int)at + 12);
            if (next == 0)
            {
                break;
            }

            at += next;
        }

        return result;
    }

    private List<string> ReadVersionDefinitions()
    {
        var result = new List<string>();
        var section = _sections.FirstOrDefault(s => s.Type == ShtGnuVerdef);
        if (section is null)
        {
            return result;
        }

        var strtab = SectionAt(section.Link);
        var end = section.Offset + section.Size;
        var at = section.Offset;
        for (var n = 0; n < section.Info; n++)
        {
            CheckRange(at, 20, end);
            var flags = U16((int)at + 2);
            var aux = at + U32((int)at + 12);
            CheckRange(aux, 8, end);
            // The first verdaux names the version; VER_FLG_BASE (0x1) marks the file's own name, not a version.
            if ((flags & 0x1) == 0)
            {
                result.Add(ReadString(strtab, U32((int)aux)));
            }

            var next = U32((int)at + 16);
            if (next == 0)
            {
                break;
            }

            at += next;
        }

        return result;
    }

    private Section SectionAt(uint index) =>
        index < _sections.Count ? _sections[(int)index] : throw new InvalidDataException($"ELF section index {index} is out of range.");

    private string ReadString(Section strtab, uint offset)
    {
        if (offset >= strtab.Size)
        {
            throw new InvalidDataException("ELF string offset is out of range.");
        }

        var start = (int)(strtab.Offset + offset);
        var span = _bytes.AsSpan(start, (int)(strtab.Size - offset));
        var length = span.IndexOf((byte)0);
        return Encoding.UTF8.GetString(length < 0 ? span : span[..length]);
    }

    private static void CheckRange(ulong at, ulong size, ulong end)
    {
        if (at + size > end)
        {
            throw new InvalidDataException("ELF version section is malformed.");
        }
    }

    private ushort U16(int at) => BinaryPrimitives.ReadUInt16LittleEndian(_bytes.AsSpan(at, 2));

    private uint U32(int at) => BinaryPrimitives.ReadUInt32LittleEndian(_bytes.AsSpan(at, 4));

    private ulong U64(int at) => BinaryPrimitives.ReadUInt64LittleEndian(_bytes.AsSpan(at, 8));

    private sealed record Section(uint Type, ulong Offset, ulong Size, uint Link, uint Info);
}
