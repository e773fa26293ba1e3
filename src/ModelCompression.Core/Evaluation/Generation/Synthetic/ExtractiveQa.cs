namespace ModelCompression.Evaluation;

/// <summary>
/// Extractive question answering over short generated paragraphs. A paragraph gives two people two to three facts
/// each (city, job, age, favourite colour, pet's name), in shuffled order and always by name; every value is distinct
/// within the paragraph, so the answer (a span of the context, copied verbatim) is unambiguous.
/// <code>
/// Context: Ben is 34 years old. Ana lives in Oslo. Ben works as a baker. Ana's cat is called Pip.
/// Question: How old is Ben?
/// </code>
/// Answer: <c>34</c>.
/// </summary>
public sealed class ExtractiveQa : IExampleGenerator
{
    private static readonly string[] Names = ["Ana", "Ben", "Cara", "Dan", "Eva", "Finn", "Gia", "Hugo", "Ivy", "Jon", "Kim", "Leo"];

    private static readonly string[] Cities = ["Oslo", "Lima", "Cairo", "Dublin", "Quito", "Rome", "Seoul", "Tunis", "Vienna", "Perth"];

    private static readonly string[] Jobs = ["baker", "nurse", "pilot", "teacher", "farmer", "painter", "lawyer", "chef"];

    private static readonly string[] Colours = ["red", "blue", "green", "purple", "orange", "yellow"];

    private static readonly string[] Pets = ["cat", "dog", "parrot", "rabbit"];

    private static readonly string[] PetNames = ["Pip", "Rex", "Milo", "Luna", "Coco", "Max", "Bella", "Toby"];

    private enum Attribute
    {
        City,
        Job,
        Age,
        Colour,
        Pet,
    }

    /// <inheritdoc />
    public string Name => "qa";

    /// <inheritdoc />
    public GeneratedExample Make(Random random, int index)
    {
        ArgumentNullException.ThrowIfNull(random);
        var names = Distinct(random, Names, 2);
        var cities = Distinct(random, Cities, 2);
        var jobs = Distinct(random, Jobs, 2);
        var colours = Distinct(random, Colours, 2);
        var petNames = Distinct(random, PetNames, 2);
        var ages = Distinct(random, [.. Enumerable.Range(20, 50).Select(a => a.ToString(System.Globalization.CultureInfo.InvariantCulture))], 2);

        var facts = new List<(string Sentence, string Question, string Answer)>();
        for (var person = 0; person < 2; person++)
        {
            var name = names[person];
            var pet = Pets[random.Next(Pets.Length)];
            var attributes = Enum.GetValues<Attribute>().ToList();
            SyntheticDataset.Shuffle(attributes, random);
            foreach (var attribute in attributes.Take(random.Next(2, 4)))
            {
                facts.Add(attribute switch
                {
                    Attribute.City => ($"{name} lives in {cities[person]}.", $"Where does {name} live?", cities[person]),
                    Attribute.Job => ($"{name} works as a {jobs[person]}.", $"What does {name} work as?", jobs[person]),
                    Attribute.Age => ($"{name} is {ages[person]} years old.", $"How old is {name}?", ages[person]),
                    Attribute.Colour => ($"{name}'s favourite colour is {colours[person]}.", $"What is {name}'s favourite colour?", colours[person]),
                    _ => ($"{name}'s {pet} is called {petNames[person]}.", $"What is the name of {name}'s {pet}?", petNames[person]),
                });
            }
        }

        SyntheticDataset.Shuffle(facts, random);
        var asked = facts[random.Next(facts.Count)];
        var context = string.Join(' ', facts.Select(f => f.Sentence));
        return new GeneratedExample($"Context: {context}\nQuestion: {asked.Question}", asked.Answer);
    }

    private static string[] Distinct(Random random, string[] words, int count)
    {
        var copy = words.ToList();
        SyntheticDataset.Shuffle(copy, random);
        return [.. copy.Take(count)];
    }
}
