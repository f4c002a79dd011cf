// hf_model.h: Hugging Face model directories as routelab checkpoints, both ways.
//   DIR/config.json                     the architecture (LlamaForCausalLM, Qwen2ForCausalLM,
//                                       Qwen3ForCausalLM, GPT2LMHeadModel) and its sizes
//   DIR/model.safetensors               the weights, F32 / BF16 / F16, Hugging Face's names
//   or DIR/model.safetensors.index.json {"weight_map": {NAME: SHARD_FILE}} and the shards
//   DIR/routelab.safetensors            (optional, written by export) the routelab-only
//                                       tensors (the gates) and the routing keys
// Reading maps config.json onto routelab's keys and a family row (family.h), and every Hugging
// Face tensor onto a routelab tensor (or a row block of one: q/k/v fuse into attn.qkv, gate/up
// into mlp.fc; GPT-2's Conv1D weights are stored in x out and transposed). Weights are
// converted to float32 in memory. Anything routelab does not implement exactly (an
// architecture, a rope type, an activation, sliding windows, a dtype, an unknown tensor) is a
// one-line error naming it, never an approximation.
#ifndef ROUTELAB_HF_MODEL_H
#define ROUTELAB_HF_MODEL_H

#include "model.h"

// 1 when path is a directory holding config.json and model.safetensors or its index.
int hf_is_model_dir(const char *path);
// The config of the directory's model, on top of the routelab defaults (dropout 0; seq_len:
// GPT-2's n_positions, else max_position_embeddings capped at HF_DEFAULT_SEQ_LEN).
#define HF_DEFAULT_SEQ_LEN 1024
void hf_read_config(const char *dir, Config *c);
// The config.json part of it from text in memory (path names it in errors; the fuzz target).
void hf_parse_config(const char *text, size_t len, const char *path, Config *c);
// Loads every tensor into m (built from hf_read_config's config, or one with other routing
// keys); tensors routelab alone has (the gates) keep their initialisation unless the directory
// has routelab.safetensors.
void hf_load(const char *dir, Model *m);
// Writes m as a Hugging Face directory (config.json, model.safetensors in F32, and
// routelab.safetensors with the gates and routing keys unless plain: then the directory holds
// what a downloaded model does, and an old routelab.safetensors is removed). Dies naming the key
// when the model has no Hugging Face equivalent (a mixture of experts, another FFN than the
// family's).
void hf_export(const Model *m, const char *dir, int plain);

#endif
