#!/bin/sh
# Checks that no source file includes a header of a higher layer. Layers, lowest first:
#   core (errors, memory, RNG, JSON, config table) < model, data (independent of each other)
#   < run (commands' engines) < exp (recipes) < cmd (the command line).
# A file may include headers of its own folder and of lower layers only.
rank() {
    case "$1" in
    core) echo 0 ;; model | data) echo 1 ;; run) echo 2 ;; exp) echo 3 ;; cmd) echo 4 ;;
    *) echo 9 ;;
    esac
}
cd "$(dirname "$0")/.." || exit 1
bad=0
for f in src/*/*.c src/*/*.h; do
    dir=$(basename "$(dirname "$f")")
    r=$(rank "$dir")
    for h in $(sed -n 's/^#include "\([A-Za-z0-9_]*\.h\)".*/\1/p' "$f"); do
        hf=$(ls src/*/"$h" 2>/dev/null | head -n 1)
        [ -n "$hf" ] || { echo "check-layers: $f includes '$h', which is in no src/ folder" >&2; bad=1; continue; }
        hdir=$(basename "$(dirname "$hf")")
        hr=$(rank "$hdir")
        if [ "$hdir" != "$dir" ] && { [ "$hr" -gt "$r" ] || [ "$hr" -eq "$r" ]; }; then
            echo "check-layers: $f ($dir) includes $hf ($hdir): a lower layer may not include a higher or sibling one" >&2
            bad=1
        fi
    done
done
[ $bad -eq 0 ] && echo "check-layers: ok"
exit $bad
