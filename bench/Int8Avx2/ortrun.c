// Runs one ONNX model on one input tensor (float32 or uint8) read from a file; writes the first output's raw bytes.
// usage: ortrun model.onnx input.bin f32|u8 out.bin dim0 dim1 ...
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "onnxruntime_c_api.h"
static const OrtApi* g;
static void check(OrtStatus* s) { if (s) { fprintf(stderr, "ORT: %s\n", g->GetErrorMessage(s)); exit(1); } }
int main(int argc, char** argv) {
  g = OrtGetApiBase()->GetApi(ORT_API_VERSION);
  OrtEnv* env; check(g->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "r", &env));
  OrtSessionOptions* so; check(g->CreateSessionOptions(&so)); check(g->SetIntraOpNumThreads(so, 1));
  OrtSession* session; check(g->CreateSession(env, argv[1], so, &session));
  int u8 = strcmp(argv[3], "u8") == 0; size_t elem = u8 ? 1 : 4;
  int rank = argc - 5; int64_t dims[8]; size_t count = 1;
  for (int i = 0; i < rank; i++) { dims[i] = atoll(argv[5 + i]); count *= dims[i]; }
  void* data = malloc(count * elem); FILE* f = fopen(argv[2], "rb"); if (fread(data, elem, count, f) != count) { fprintf(stderr, "short input\n"); return 1; } fclose(f);
  OrtMemoryInfo* mem; check(g->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &mem));
  OrtValue* input = NULL; check(g->CreateTensorWithDataAsOrtValue(mem, data, count * elem, dims, rank, u8 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &input));
  OrtAllocator* alloc; check(g->GetAllocatorWithDefaultOptions(&alloc));
  char *in_name, *out_name; check(g->SessionGetInputName(session, 0, alloc, &in_name)); check(g->SessionGetOutputName(session, 0, alloc, &out_name));
  OrtValue* output = NULL; const char* ins[] = { in_name }; const char* outs[] = { out_name };
  check(g->Run(session, NULL, ins, (const OrtValue* const*)&input, 1, outs, 1, &output));
  OrtTensorTypeAndShapeInfo* info; check(g->GetTensorTypeAndShape(output, &info)); size_t n; check(g->GetTensorShapeElementCount(info, &n));
  void* out; check(g->GetTensorMutableData(output, &out));
  f = fopen(argv[4], "wb"); fwrite(out, 4, n, f); fclose(f);
  printf("%s: %zu outputs written\n", argv[1], n);
  return 0;
}
