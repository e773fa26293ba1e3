using System.Collections.Concurrent;
using System.Reflection;
using System.Reflection.Emit;

namespace ModelCompression.Core.Tests.Safety;

/// <summary>
/// Reads method bodies as IL bytes, for the tests that check our assemblies for a whole class of mistake
/// (<see cref="ScalarLifetimeTests"/>, <see cref="NamespaceDirectionTests"/>). Reflection gives the bytes but no
/// instruction decoder, so this decodes opcodes itself and resolves metadata tokens in the method's generic context.
/// </summary>
internal static class IlScanner
{
    private const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value);

    /// <summary>Every method and constructor declared by every type (nested and compiler-generated ones too) of an assembly.</summary>
    public static IEnumerable<MethodBase> AllMethods(Assembly assembly) => assembly.GetTypes().SelectMany(DeclaredMethods);

    /// <summary>The methods and constructors a type declares itself, static constructors included.</summary>
    public static IEnumerable<MethodBase> DeclaredMethods(Type type) =>
        type.GetMethods(All).Cast<MethodBase>().Concat(type.GetConstructors(All));

    /// <summary>Every method a method's IL calls, creates or takes the address of.</summary>
    public static List<MethodBase> Callees(MethodBase method)
    {
        var callees = new List<MethodBase>();
        foreach (var operand in TokenOperands(method))
        {
            if (operand.Type == OperandType.InlineMethod && operand.Resolve() is MethodBase callee)
            {
                callees.Add(callee);
            }
        }

        return callees;
    }

    /// <summary>
    /// The metadata-token operands of a method's IL (methods, fields, types and ldtoken's members), in order. A method
    /// without a body (abstract, extern) or whose body cannot be read has none.
    /// </summary>
    public static List<TokenOperand> TokenOperands(MethodBase method) => TokenOperands(method, Body(method));

    /// <summary><see cref="TokenOperands(MethodBase)"/> of a body already read with <see cref="Body"/>.</summary>
    public static List<TokenOperand> TokenOperands(MethodBase method, MethodBody? body)
    {
        var operands = new List<TokenOperand>();
        if (body?.GetILAsByteArray() is not { } il)
        {
            return operands;
        }

        var typeArguments = method.DeclaringType is { IsGenericType: true } t ? t.GetGenericArguments() : null;
        var methodArguments = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (var at = 0; at < il.Length;)
        {
            var code = il[at] == 0xFE ? OpCodesByValue[(short)(0xFE00 | il[at + 1])] : OpCodesByValue[il[at]];
            at += code.Size;
            if (code.OperandType is OperandType.InlineMethod or OperandType.InlineField or OperandType.InlineType or OperandType.InlineTok)
            {
                operands.Add(new TokenOperand(code.OperandType, method.Module, BitConverter.ToInt32(il, at), typeArguments, methodArguments));
            }

            at += OperandSize(code, il, at);
        }

        return operands;
    }

    /// <summary>A method's body, or null for a method without one (abstract, extern) or whose body cannot be read.</summary>
    public static MethodBody? Body(MethodBase method)
    {
        try
        {
            return method.GetMethodBody();
        }
        catch (Exception e) when (e is InvalidOperationException or BadImageFormatException)
        {
            return null;
        }
    }

    private static int OperandSize(OpCode code, byte[] il, int at) => code.OperandType switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        OperandType.InlineSwitch => 4 + (4 * BitConverter.ToInt32(il, at)),
        _ => 4,
    };
}

/// <summary>One metadata token in a method's IL, with the generic context needed to resolve it.</summary>
/// <param name="Type">The operand kind: a method, field, type, or ldtoken's member of any kind.</param>
/// <param name="Module">The module whose metadata the token indexes.</param>
/// <param name="Token">The metadata token.</param>
/// <param name="TypeArguments">The declaring type's generic arguments, when it is generic.</param>
/// <param name="MethodArguments">The method's generic arguments, when it is generic.</param>
internal readonly record struct TokenOperand(OperandType Type, Module Module, int Token, Type[]? TypeArguments, Type[]? MethodArguments)
{
    private const uint TypeRefTable = 0x01;
    private const uint TypeDefTable = 0x02;
    private const uint FieldTable = 0x04;
    private const uint MethodDefTable = 0x06;

    private static readonly ConcurrentDictionary<(Module, int, OperandType), MemberInfo?> Resolved = new();

    /// <summary>
    /// The member the token names, or null when this generic context cannot bind it (a member of a generic type
    /// instantiated over a type that is not loadable here).
    /// </summary>
    public MemberInfo? Resolve()
    {
        // A definition or a plain type reference means the same member wherever it appears, and so does any token
        // outside generic code; a scan meets the same tokens over and over: resolve those once.
        var table = (uint)Token >> 24;
        if ((TypeArguments is null && MethodArguments is null) || table is TypeRefTable or TypeDefTable or FieldTable or MethodDefTable)
        {
            return Resolved.GetOrAdd((Module, Token, Type), static (_, operand) => operand.ResolveNow(), this);
        }

        return ResolveNow();
    }

    private MemberInfo? ResolveNow()
    {
        try
        {
            return Type switch
            {
                OperandType.InlineMethod => Module.ResolveMethod(Token, TypeArguments, MethodArguments),
                OperandType.InlineField => Module.ResolveField(Token, TypeArguments, MethodArguments),
                OperandType.InlineType => Module.ResolveType(Token, TypeArguments, MethodArguments),
                _ => Module.ResolveMember(Token, TypeArguments, MethodArguments),
            };
        }
        catch (Exception e) when (e is ArgumentException or MissingMemberException or BadImageFormatException)
        {
            return null;
        }
    }
}
