using ModelCompression.Common;
using ModelCompression.Training;

namespace ModelCompression.Stages;

/// <summary>
/// Options every training stage shares (finetune, distill, sweep): the training settings as flat recipe keys, and
/// where the student starts from.
/// </summary>
public abstract record TrainingStageOptions : TrainingSettings
{
    /// <summary>Whether the student starts from the teacher's weights where names and shapes match.</summary>
    [Option("init_from_teacher", "Start the student from the teacher's weights: every initializer whose name and shape match a teacher initializer (after layer_map) is copied before training.")]
    public bool InitFromTeacher { get; init; }

    /// <summary>Student layer i starts from teacher layer LayerMap[i]; empty maps names one to one.</summary>
    [Option("layer_map", "With init_from_teacher: student layer i starts from teacher layer layer_map[i], e.g. [1, 3] for a 2-layer student of a 4-layer teacher (layers are found by 'layer<N>' / 'layers.<N>' in names).", Min = 0, Max = 10000)]
    public int[] LayerMap { get; init; } = [];
}
