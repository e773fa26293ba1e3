namespace ModelCompression.Diagnostics;

/// <summary>
/// Every diagnostic code the engine emits, in one place so codes stay unique. MC1xxx recipe and options,
/// MC2xxx models and data, MC3xxx gates, MC4xxx environment, MC5xxx internal.
/// </summary>
public static class DiagnosticCodes
{
    /// <summary>The recipe file cannot be read or is not valid YAML.</summary>
    public const string RecipeSyntax = "MC1001";

    /// <summary>A recipe key is unknown (a typo, or an option the stage does not have).</summary>
    public const string RecipeUnknownKey = "MC1002";

    /// <summary>A recipe value is invalid (wrong type, out of range).</summary>
    public const string RecipeInvalidValue = "MC1003";

    /// <summary>A required recipe key is missing.</summary>
    public const string RecipeMissingKey = "MC1004";

    /// <summary>A file the recipe names does not exist.</summary>
    public const string RecipeFileNotFound = "MC1005";

    /// <summary>A gate expression cannot be parsed or names an unknown metric.</summary>
    public const string RecipeInvalidGate = "MC1006";

    /// <summary>A command-line argument is invalid.</summary>
    public const string UsageError = "MC1010";

    /// <summary>The file is not a readable ONNX model (empty, truncated, corrupt, not ONNX).</summary>
    public const string ModelUnreadable = "MC2001";

    /// <summary>The model is readable but invalid (undefined inputs, duplicate names, cycles, bad shapes).</summary>
    public const string ModelInvalid = "MC2002";

    /// <summary>An external data location leaves the model's folder.</summary>
    public const string ExternalDataOutsideModelFolder = "MC2003";

    /// <summary>An external data file is missing or shorter than the tensor needs.</summary>
    public const string ExternalDataMissing = "MC2004";

    /// <summary>The model uses an IR version or opset outside the supported range.</summary>
    public const string ModelUnsupportedVersion = "MC2005";

    /// <summary>An operator has no trainable TorchSharp mapping.</summary>
    public const string UnsupportedOperator = "MC2010";

    /// <summary>Data does not match the model's inputs or outputs (shape, dtype, label range).</summary>
    public const string DataSchemaMismatch = "MC2020";

    /// <summary>A data file cannot be read or holds bad rows.</summary>
    public const string DataUnreadable = "MC2021";

    /// <summary>Data rows are bad: NaN or infinite features, a missing or unknown label, a ragged or non-numeric CSV row, bad JSON.</summary>
    public const string DataBadRows = "MC2022";

    /// <summary>A data file is readable but laid out in a way that is not supported (Fortran order, big-endian, an odd dtype).</summary>
    public const string DataUnsupportedLayout = "MC2023";

    /// <summary>A tokenizer cannot be made (unknown encoding, unreadable vocabulary or SentencePiece model).</summary>
    public const string TokenizerUnavailable = "MC2024";

    /// <summary>A transform found nothing to change (e.g. no MatMul/Gemm weight to quantize).</summary>
    public const string NothingToTransform = "MC2030";

    /// <summary>The quantized model was not faster than the float one, so the float model was kept (keep_float_if_slower).</summary>
    public const string QuantizedNotFaster = "MC2050";

    /// <summary>The quantized model lost more accuracy against the float one than max_accuracy_drop allows.</summary>
    public const string QuantizedAccuracyDrop = "MC2051";

    /// <summary>The model has something the quantize stage cannot convert (control flow, an already quantized graph).</summary>
    public const string QuantizeUnsupportedModel = "MC2052";

    /// <summary>Calibration or the accuracy check cannot run on the data (NaN activations, no labels).</summary>
    public const string CalibrationFailed = "MC2053";

    /// <summary>A quantized layer has int8 weights that can overflow the int16 pair sums of CPUs without VNNI (AVX2), so it would compute wrong values there.</summary>
    public const string QuantizedLayerSaturates = "MC2054";

    /// <summary>A quantized layer cannot be proven free of int16 pair saturation on CPUs without VNNI (its int8 weight is not a constant).</summary>
    public const string QuantizedLayerUnproven = "MC2055";

    /// <summary>Structured pruning leaves a layer whole: its units feed a pattern it cannot follow (a warning).</summary>
    public const string StructureNotPrunable = "MC2060";

    /// <summary>A transformed model failed the structural check or ONNX Runtime's forward pass, so it was not accepted.</summary>
    public const string TransformedModelRejected = "MC2061";

    /// <summary>Transformer layers to drop do not fit the model (no such layer, none left, not a residual block).</summary>
    public const string LayerDropInvalid = "MC2062";

    /// <summary>A generative model folder's generation.json cannot be read or holds a bad value (named with its file and line).</summary>
    public const string GenerationConfigInvalid = "MC2063";

    /// <summary>A decoder, its tokenizer and its generation settings do not make a deployable folder (vocabulary sizes differ, no cache, no known context length, a file of the folder missing).</summary>
    public const string GenerativeFolderInvalid = "MC2064";

    /// <summary>`serve`: a request's body cannot be read as a request (not JSON, not an object, larger than the server takes).</summary>
    public const string ServeRequestUnreadable = "MC2065";

    /// <summary>`serve`: a request field has the wrong type, a value out of range, or asks for what the server does not do.</summary>
    public const string ServeRequestInvalid = "MC2066";

    /// <summary>`serve`: a request names a model the server does not serve.</summary>
    public const string ServeModelNotFound = "MC2067";

    /// <summary>`serve`: a model cannot be served (not a generative model folder or decoder file, no tokenizer, two models of one name, a bad address).</summary>
    public const string ServeModelUnusable = "MC2068";

    /// <summary>`serve`: a fault-injection rule cannot be parsed.</summary>
    public const string ServeFaultRuleInvalid = "MC2069";

    /// <summary>Conversations whose last answer alone is longer than the maximum length were not used (a warning; they are counted and named).</summary>
    public const string ChatAnswerTooLong = "MC2070";

    /// <summary>A teacher-answer file (or its stats file beside it) is damaged: bad JSON, a field missing or of the wrong type, or fewer answers than its stats count (named with file and line).</summary>
    public const string TeacherAnswersFileInvalid = "MC2071";

    /// <summary>The teacher cannot answer the prompts: a rendered prompt leaves no room for an answer in the teacher's positions (or max_length), or max_length exceeds the teacher's position table; the longest prompt is named.</summary>
    public const string TeacherPromptTooLong = "MC2072";

    /// <summary>The teacher-answer options do not go together (several samples per prompt with greedy decoding, samples set in two places) or one is out of range.</summary>
    public const string TeacherAnswerOptionsInvalid = "MC2073";

    /// <summary>Teacher answers were dropped (unfinished, empty, refused by the task's parser, duplicates; counted by reason): a warning, or an error when no answer at all was kept.</summary>
    public const string TeacherAnswersDropped = "MC2074";

    /// <summary>A decoder's attention heads cannot be removed safely (a block in a form the pruner cannot follow, named with its node, or layers left with different head counts while the cache needs one).</summary>
    public const string DecoderHeadsNotPrunable = "MC2075";

    /// <summary>A decoder student cannot take a decoder teacher's layers: a model is not a decoder, or the layer map does not fit the layers (length, index out of range).</summary>
    public const string DecoderLayerMapInvalid = "MC2076";

    /// <summary>A decoder student's weights do not fit the teacher weights they would come from (shape, missing twin, tied head, position table, head split).</summary>
    public const string DecoderInitMismatch = "MC2077";

    /// <summary>An endpoint teacher declared to share the student's tokenizer gave, on its probe request, no log-probabilities or tokens that are not the student's.</summary>
    public const string EndpointTokenizerMismatch = "MC2078";

    /// <summary>A classification recipe asks an endpoint teacher for what it cannot give: data that is not text with class names, or the teacher's weights or intermediate tensors (init_from_teacher, hints, dead-code analysis of the teacher).</summary>
    public const string EndpointTeacherCannotClassify = "MC2079";

    /// <summary>A model given as a decoder does not follow the decoder convention (DecoderConvention: names, element types, cache inputs and outputs in pairs).</summary>
    public const string DecoderNotInConvention = "MC2080";

    /// <summary>A prompt to generate from is empty or holds a token id outside the decoder's vocabulary.</summary>
    public const string GenerationPromptInvalid = "MC2081";

    /// <summary>A prompt to generate from is longer than the decoder's position table.</summary>
    public const string GenerationPromptTooLong = "MC2082";

    /// <summary>Token-level distillation asks for a teacher whose tokenizer is not the student's (their saved descriptions differ): only sequence-level distillation applies.</summary>
    public const string TeacherTokenizerMismatch = "MC2083";

    /// <summary>No conversation of the chat data has an answer to train within the maximum length.</summary>
    public const string ChatNothingToTrain = "MC2084";

    /// <summary>A decoder's logits do not fit its tokenizer's vocabulary (training needs them equal; evaluation needs every id the tokenizer makes to have a logit).</summary>
    public const string DecoderVocabularyMismatch = "MC2085";

    /// <summary>Training sequences are longer than a decoder's position table (raise its max_length or lower the data's).</summary>
    public const string DecoderSequenceTooLong = "MC2086";

    /// <summary>A test split to evaluate a generative model on is empty or holds a record without a final answer (file and line named).</summary>
    public const string GenerationTestSplitInvalid = "MC2087";

    /// <summary>A generative task's options do not make a parser (an answer pattern without exactly one capture group, fewer than two label words, an option of another task).</summary>
    public const string GenerativeTaskInvalid = "MC2088";

    /// <summary>The endpoint teacher's options are out of range or do not go together (EndpointTeacherOptions.Problems: an endpoint that is not an http(s) URL or holds credentials, a prompt template without {content}, ...).</summary>
    public const string EndpointTeacherOptionsInvalid = "MC2089";

    /// <summary>The endpoint teacher cannot be called: api_key_env names an unset variable, or the endpoint refused the key (401, 403) or knows no such route or model (404).</summary>
    public const string EndpointTeacherUnreachable = "MC2090";

    /// <summary>offline: true, and the answer cache lacks requests the prompts need (their count and the first prompts' file and line are named).</summary>
    public const string EndpointAnswersMissingOffline = "MC2091";

    /// <summary>Fewer of the endpoint teacher's answers were usable than min_success_ratio asks (the counts by reason are given; the answers so far stay cached).</summary>
    public const string EndpointSuccessRatioTooLow = "MC2092";

    /// <summary>A warning: an answer-cache entry is damaged (cut, edited, not the request its name says) and is treated as missing.</summary>
    public const string EndpointCacheEntryInvalid = "MC2093";

    /// <summary>A batch requests or results file (OpenAI/Azure batch JSONL) has a line that cannot be read or matched (file and line named).</summary>
    public const string EndpointBatchFileInvalid = "MC2094";

    /// <summary>A reference (gold) answer fails its task's answer parser (no final number, not a label word, empty): the data is bad, not the model.</summary>
    public const string GoldAnswerUnparsable = "MC2095";

    /// <summary>A data generator cannot make as many distinct examples as the splits ask for (the task's space or the corpus is too small).</summary>
    public const string GeneratedDataTooSmall = "MC2096";

    /// <summary>A mail corpus folder is missing or holds a file that is not a readable mail record.</summary>
    public const string MailCorpusUnreadable = "MC2097";

    /// <summary>A warning: a stage cache entry (local or remote) failed its check against its manifest (a file's hash or size, a file missing or added, an unreadable manifest, another engine's entry): treated as a miss and rebuilt.</summary>
    public const string CacheEntryDamaged = "MC2098";

    /// <summary>The class names an endpoint teacher must reply with cannot be told apart (two equal ignoring case, an empty name, white space around one, fewer than two).</summary>
    public const string EndpointClassNamesAmbiguous = "MC2099";

    /// <summary>An accuracy gate failed.</summary>
    public const string GateFailed = "MC3001";

    /// <summary>A baseline file is missing (a warning on the first run).</summary>
    public const string BaselineMissing = "MC3002";

    /// <summary>A baseline file cannot be read (not JSON, another schema version).</summary>
    public const string BaselineInvalid = "MC3003";

    /// <summary>TorchSharp's native libraries cannot be loaded.</summary>
    public const string TorchNativeLoadFailed = "MC4001";

    /// <summary>Another process holds the lock on the same output for too long.</summary>
    public const string LockTimeout = "MC4002";

    /// <summary>The engine is missing from the MSBuild package (an incomplete package folder).</summary>
    public const string EngineMissing = "MC4003";

    /// <summary>Two recipes of one project write files of the same name to its output folder (reported by the MSBuild task).</summary>
    public const string OutputNameClash = "MC4004";

    /// <summary>A native package (libtorch) is not in the NuGet packages folder and could not be fetched from any configured source.</summary>
    public const string NativePackageUnavailable = "MC4005";

    /// <summary>A fetched native package is corrupt or incomplete (nothing of it was installed).</summary>
    public const string NativePackageCorrupt = "MC4006";

    /// <summary>A <c>CompressModel</c> item's metadata has a value it cannot take (reported by the MSBuild task, at the project).</summary>
    public const string InvalidItemMetadata = "MC4007";

    /// <summary>The CUDA execution provider was asked for but cannot run here (no driver, CUDA or cuDNN library, or GPU).</summary>
    public const string CudaUnavailable = "MC4008";

    /// <summary>The CUDA execution provider was asked for but ONNX Runtime's GPU build is not in the NuGet packages folder.</summary>
    public const string OnnxRuntimeGpuBuildMissing = "MC4009";

    /// <summary>The remote stage cache cannot be reached or refused a request (network, authorization, a missing folder or container): a run goes on with its local cache only; a cache command fails.</summary>
    public const string RemoteCacheUnavailable = "MC4020";

    /// <summary>The remote stage cache needs a credential (a connection string or SAS token) and the environment variable named for it is not set: a run goes on with its local cache only.</summary>
    public const string RemoteCacheCredentialMissing = "MC4021";

    /// <summary>The remote stage cache's credential variable holds something that is not a connection string or SAS token (its value is never shown).</summary>
    public const string RemoteCacheCredentialInvalid = "MC4022";

    /// <summary>An unexpected internal error (a bug: please report it).</summary>
    public const string Internal = "MC5001";
}
