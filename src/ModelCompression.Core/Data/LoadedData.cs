namespace ModelCompression.Data;

/// <summary>The splits of a recipe's data, read and checked.</summary>
public sealed class LoadedData : IDisposable
{
    private readonly IReadOnlyList<Dataset> _roots;

    internal LoadedData(Dataset train, Dataset test, Dataset? validation, Dataset? unlabelled, IReadOnlyList<Dataset> roots)
    {
        Train = train;
        Test = test;
        Validation = validation;
        Unlabelled = unlabelled;
        _roots = roots;
    }

    /// <summary>Training split (labelled).</summary>
    public Dataset Train { get; }

    /// <summary>Held-out split (labelled).</summary>
    public Dataset Test { get; }

    /// <summary>Validation split, when the recipe has one.</summary>
    public Dataset? Validation { get; }

    /// <summary>Unlabelled inputs, when the recipe has them.</summary>
    public Dataset? Unlabelled { get; }

    /// <summary>Label names, tokenizer and vocabulary, normalisation: shared by every split.</summary>
    public DataDescription Description => Train.Description;

    /// <summary>Every split, named, in a fixed order.</summary>
    public IEnumerable<(string Name, Dataset Data)> Splits()
    {
        yield return ("train", Train);
        yield return ("test", Test);
        if (Validation is not null)
        {
            yield return ("validation", Validation);
        }

        if (Unlabelled is not null)
        {
            yield return ("unlabelled", Unlabelled);
        }
    }

    /// <summary>Closes mapped files.</summary>
    public void Dispose()
    {
        foreach (var root in _roots)
        {
            root.Dispose();
        }
    }
}
