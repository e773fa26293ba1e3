using System.Reflection;
using System.Runtime.CompilerServices;

namespace ModelCompression.Core.Tests.Safety;

/// <summary>One use of a type by another: <see cref="Source"/>'s <see cref="Member"/> uses <see cref="Target"/>.</summary>
/// <param name="Source">The type whose declaration or code holds the reference (possibly nested or compiler-generated).</param>
/// <param name="Member">The member of <see cref="Source"/> that holds it, or "(base type)", "(interface)", "(attribute)", "(constraint)".</param>
/// <param name="Target">The type referred to: never generic over arguments, an array or a by-ref (those are taken apart).</param>
internal sealed record TypeReference(Type Source, string Member, Type Target)
{
    /// <summary>The outermost type that declares <paramref name="type"/>: lambdas, iterators, records' helpers and nested types belong to it.</summary>
    public static Type Outermost(Type type)
    {
        while (type.DeclaringType is { } outer)
        {
            type = outer;
        }

        return type;
    }

    /// <summary>The namespace a type counts in: its outermost type's, "(global)" for none.</summary>
    public static string NamespaceOf(Type type) => Outermost(type).Namespace ?? "(global)";

    /// <summary>A type's name without its namespace, nested names joined by '+', as a developer would search for it.</summary>
    public static string ShortName(Type type)
    {
        var full = type.FullName ?? type.Name;
        var ns = Outermost(type).Namespace;
        return ns is null ? full : full[(ns.Length + 1)..];
    }

    /// <summary>Whether the compiler made the type (a closure, an iterator, an embedded attribute) rather than a person.</summary>
    public static bool IsCompilerGenerated(Type type) =>
        type.Name.StartsWith('<') || type.IsDefined(typeof(CompilerGeneratedAttribute), inherit: false);

    /// <summary>"SourceType.Member uses TargetType", with the types named without their namespaces.</summary>
    public string Site => $"{ShortName(Source)}.{Member} uses {ShortName(Target)}";
}

/// <summary>
/// Collects every type-to-type reference a type's metadata and IL hold: base type, interfaces, generic constraints,
/// fields, properties, events, method signatures, local variables, custom attributes (with their typeof and enum
/// arguments) and the IL's method, field, type and ldtoken operands, resolved in the method's generic context.
/// Constructed generic types are taken apart into their definition and arguments, recursively.
/// </summary>
internal static class TypeReferenceCollector
{
    private const BindingFlags Declared = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    /// <summary>
    /// Every reference held by the given types (each type's own members only: pass nested types too), each distinct
    /// (source, member, target) once.
    /// </summary>
    public static List<TypeReference> Collect(IEnumerable<Type> types)
    {
        var references = new HashSet<TypeReference>();
        foreach (var type in types)
        {
            Collect(type, references);
        }

        return [.. references];
    }

    private static void Collect(Type type, HashSet<TypeReference> into)
    {
        void Add(string member, Type? target)
        {
            foreach (var part in Parts(target))
            {
                into.Add(new TypeReference(type, member, part));
            }
        }

        Add("(base type)", type.BaseType);
        var inherited = type.BaseType?.GetInterfaces() ?? [];
        foreach (var face in type.GetInterfaces().Except(inherited))
        {
            Add("(interface)", face);
        }

        AddAttributes(type.GetCustomAttributesData(), "(attribute)", Add);
        foreach (var parameter in type.IsGenericTypeDefinition ? type.GetGenericArguments() : [])
        {
            foreach (var constraint in parameter.GetGenericParameterConstraints())
            {
                Add("(constraint)", constraint);
            }
        }

        foreach (var field in type.GetFields(Declared))
        {
            Add(field.Name, field.FieldType);
            AddAttributes(field.GetCustomAttributesData(), field.Name, Add);
        }

        foreach (var property in type.GetProperties(Declared))
        {
            Add(property.Name, property.PropertyType);
            AddAttributes(property.GetCustomAttributesData(), property.Name, Add);
        }

        foreach (var @event in type.GetEvents(Declared))
        {
            Add(@event.Name, @event.EventHandlerType);
            AddAttributes(@event.GetCustomAttributesData(), @event.Name, Add);
        }

        foreach (var method in IlScanner.DeclaredMethods(type))
        {
            var name = method.Name;
            AddAttributes(method.GetCustomAttributesData(), name, Add);
            if (method is MethodInfo info)
            {
                Add(name, info.ReturnType);
                AddAttributes(info.ReturnParameter.GetCustomAttributesData(), name, Add);
            }

            foreach (var parameter in method.GetParameters())
            {
                Add(name, parameter.ParameterType);
                AddAttributes(parameter.GetCustomAttributesData(), name, Add);
            }

            foreach (var parameter in method.IsGenericMethodDefinition ? method.GetGenericArguments() : [])
            {
                foreach (var constraint in parameter.GetGenericParameterConstraints())
                {
                    Add(name, constraint);
                }
            }

            var body = IlScanner.Body(method);
            foreach (var local in body?.LocalVariables ?? [])
            {
                Add(name, local.LocalType);
            }

            foreach (var operand in IlScanner.TokenOperands(method, body))
            {
                switch (operand.Resolve())
                {
                    case Type target:
                        Add(name, target);
                        break;
                    case MethodBase callee:
                        Add(name, callee.DeclaringType);
                        foreach (var argument in callee.IsGenericMethod && !callee.IsGenericMethodDefinition ? callee.GetGenericArguments() : [])
                        {
                            Add(name, argument);
                        }

                        break;
                    case FieldInfo field:
                        Add(name, field.DeclaringType);
                        break;
                    default:
                        // Unresolvable in this generic context (see TokenOperand.Resolve), or a calli signature.
                        break;
                }
            }
        }
    }

    /// <summary>
    /// An attribute's type, and the types its arguments name: typeof(X) values and enum-typed values (the enum's
    /// literal is inlined, but metadata keeps its type). This is how [Option] on a record parameter is seen.
    /// </summary>
    private static void AddAttributes(IList<CustomAttributeData> attributes, string member, Action<string, Type?> add)
    {
        foreach (var attribute in attributes)
        {
            add(member, attribute.AttributeType);
            foreach (var argument in attribute.ConstructorArguments.Concat(attribute.NamedArguments.Select(n => n.TypedValue)))
            {
                AddArgument(argument, member, add);
            }
        }
    }

    private static void AddArgument(CustomAttributeTypedArgument argument, string member, Action<string, Type?> add)
    {
        if (argument.ArgumentType.IsEnum)
        {
            add(member, argument.ArgumentType);
        }

        switch (argument.Value)
        {
            case Type type:
                add(member, type);
                break;
            case IEnumerable<CustomAttributeTypedArgument> elements:
                foreach (var element in elements)
                {
                    AddArgument(element, member, add);
                }

                break;
            default:
                break;
        }
    }

    /// <summary>The named types a type expression consists of: X[] is X, List&lt;X&gt; is List`1 and X, T is nothing.</summary>
    private static IEnumerable<Type> Parts(Type? type)
    {
        if (type is null || type.IsGenericParameter)
        {
            yield break;
        }

        if (type.HasElementType)
        {
            foreach (var part in Parts(type.GetElementType()))
            {
                yield return part;
            }

            yield break;
        }

        if (type.IsGenericType && !type.IsGenericTypeDefinition)
        {
            yield return type.GetGenericTypeDefinition();
            foreach (var part in type.GetGenericArguments().SelectMany(Parts))
            {
                yield return part;
            }

            yield break;
        }

        yield return type;
    }
}
