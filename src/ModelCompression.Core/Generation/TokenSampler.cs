namespace ModelCompression.Generation;

/// <summary>
/// Picks the next token from one row of logits as <see cref="GenerationOptions"/> say: greedy (arg-max, lowest id on a
/// tie) or a draw from the distribution after temperature, top-k and top-p (Hugging Face's order and rules: top-k
/// keeps ties with the k-th value; top-p keeps the most likely tokens while the probability before each is below p).
/// Sums run in double, so the same logits give the same choice on any CPU.
/// </summary>
public static class TokenSampler
{
    /// <summary>The index of the largest logit, the lowest on a tie.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty)
        {
            throw new ArgumentException("No logits to choose from.", nameof(logits));
        }

        var best = 0;
        for (var i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
            {
                best = i;
            }
        }

        return best;
    }

    /// <summary>
    /// The probabilities the draw uses, over the whole vocabulary (0 for filtered tokens; they sum to 1): one-hot on
    /// <see cref="ArgMax"/> when <paramref name="options"/> are greedy.
    /// </summary>
    public static double[] Distribution(ReadOnlySpan<float> logits, GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var probabilities = new double[logits.Length];
        if (options.IsGreedy)
        {
            probabilities[ArgMax(logits)] = 1;
            return probabilities;
        }

        var scaled = new double[logits.Length];
        for (var i = 0; i < logits.Length; i++)
        {
            scaled[i] = logits[i] / options.Temperature;
        }

        var floor = double.NegativeInfinity;
        if (options.TopK > 0 && options.TopK < logits.Length)
        {
            var sorted = (double[])scaled.Clone();
            Array.Sort(sorted);
            floor = sorted[^options.TopK];
        }

        var max = double.NegativeInfinity;
        foreach (var value in scaled)
        {
            max = value >= floor ? Math.Max(max, value) : max;
        }

        var sum = 0.0;
        for (var i = 0; i < scaled.Length; i++)
        {
            probabilities[i] = scaled[i] >= floor ? Math.Exp(scaled[i] - max) : 0;
            sum += probabilities[i];
        }

        for (var i = 0; i < probabilities.Length; i++)
        {
            probabilities[i] /= sum;
        }

        if (options.TopP < 1)
        {
            KeepNucleus(probabilities, options.TopP);
        }

        return probabilities;
    }

    /// <summary>
    /// Chooses the next token: greedy without a draw, otherwise the first token (in id order) at which the cumulative
    /// <see cref="Distribution"/> exceeds a uniform draw from <paramref name="random"/>.
    /// </summary>
    public static int Choose(ReadOnlySpan<float> logits, GenerationOptions options, SequenceRandom random)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(random);
        if (options.IsGreedy)
        {
            return ArgMax(logits);
        }

        var probabilities = Distribution(logits, options);
        var draw = random.NextDouble();
        var cumulative = 0.0;
        var last = -1;
        for (var i = 0; i < probabilities.Length; i++)
        {
            if (probabilities[i] <= 0)
            {
                continue;
            }

            last = i;
            cumulative += probabilities[i];
            if (draw < cumulative)
            {
                return i;
            }
        }

        // Rounding can leave the sum a hair under 1 and the draw above it: the last kept token is the one.
        return last;
    }

    /// <summary>
    /// A copy of <paramref name="logits"/> with OpenAI's repetition penalties applied: each token generated
    /// <c>count</c> times (<paramref name="counts"/>) loses <c>count * frequency + presence</c>.
    /// </summary>
    public static float[] Penalize(ReadOnlySpan<float> logits, IReadOnlyDictionary<int, int> counts, double frequency, double presence)
    {
        ArgumentNullException.ThrowIfNull(counts);
        var penalized = logits.ToArray();
        foreach (var (token, count) in counts)
        {
            if (count > 0)
            {
                penalized[token] = (float)(penalized[token] - (count * frequency) - presence);
            }
        }

        return penalized;
    }

    /// <summary>log-softmax of <paramref name="logits"/> at <paramref name="token"/>: the model's own log-probability (temperature 1, no filtering).</summary>
    public static float Logprob(ReadOnlySpan<float> logits, int token) => (float)(logits[token] - LogSumExp(logits));

    /// <summary>The <paramref name="count"/> most likely tokens with their log-probabilities, most likely first (lowest id first on a tie).</summary>
    public static TokenLogprob[] Top(ReadOnlySpan<float> logits, int count)
    {
        var logZ = LogSumExp(logits);
        var ids = new int[logits.Length];
        var values = logits.ToArray();
        for (var i = 0; i < ids.Length; i++)
        {
            ids[i] = i;
        }

        Array.Sort(ids, (a, b) => values[a] != values[b] ? values[b].CompareTo(values[a]) : a.CompareTo(b));
        return [.. ids.Take(Math.Min(count, ids.Length)).Select(id => new TokenLogprob(id, (float)(values[id] - logZ)))];
    }

    private static double LogSumExp(ReadOnlySpan<float> logits)
    {
        double max = logits[ArgMax(logits)];
        var sum = 0.0;
        foreach (var value in logits)
        {
            sum += Math.Exp(value - max);
        }

        return max + Math.Log(sum);
    }

    /// <summary>Zeroes every token outside the nucleus of <paramref name="topP"/> and renormalises the rest.</summary>
    private static void KeepNucleus(double[] probabilities, double topP)
    {
        var order = Enumerable.Range(0, probabilities.Length).Where(i => probabilities[i] > 0).ToArray();
        Array.Sort(order, (a, b) => probabilities[a] != probabilities[b] ? probabilities[b].CompareTo(probabilities[a]) : a.CompareTo(b));
        var before = 0.0;
        var kept = 0.0;
        foreach (var i in order)
        {
            if (before < topP)
            {
                before += probabilities[i];
                kept += probabilities[i];
            }
            else
            {
                probabilities[i] = 0;
            }
        }

        for (var i = 0; i < probabilities.Length; i++)
        {
            probabilities[i] /= kept;
        }
    }
}

/// <summary>
/// A sequence's own random stream (SplitMix64, fixed here so the same seed draws the same numbers on every .NET and
/// CPU): seeded from the generation seed and the sample index only, never from the batch a sequence runs in.
/// </summary>
public sealed class SequenceRandom
{
    private ulong _state;

    /// <summary>The stream of sample <paramref name="sampleIndex"/> under <paramref name="seed"/>.</summary>
    public SequenceRandom(long seed, int sampleIndex)
    {
        _state = unchecked(((ulong)seed * 0x9E3779B97F4A7C15UL) ^ ((ulong)sampleIndex + 0xD1B54A32D192ED03UL));
        NextUInt64();
    }

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        unchecked
        {
            var z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>A uniform draw from [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));
}
