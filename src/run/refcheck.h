// refcheck.h: compares routelab against reference cases dumped by the PyTorch twin
// (format of ../shared/ref/README.md): logits, loss, diagnostics, every gradient, the losses of
// three AdamW steps and the parameters after them.
#ifndef ROUTELAB_REFCHECK_H
#define ROUTELAB_REFCHECK_H

// routelab refcheck DIR [--case=NAME] [--verbose]; DIR is a case set (with index.json) or a
// directory of case sets. Returns 0 when every case passes (skipped cases are listed).
int cmd_refcheck(int argc, char **argv);
// Parses index.json text (NUL-terminated) and checks every field the cases use, as refcheck
// does before running them; dir names the set in errors. A bad index is a fatal error.
void refcheck_check_index(const char *text, const char *dir);

#endif
