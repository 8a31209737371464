#!/bin/sh
# Writes, on stdout, an assembler file that embeds the given files in the binary and a table
# of them (core/assets.c reads it). A file is named by its path in the tree, except uPlot's
# files from node_modules, which are served beside the dashboard as web/<file>.
set -eu
echo '	.section .rodata'
i=0
for f in "$@"; do
  abs=$(cd "$(dirname "$f")" && pwd)/$(basename "$f")
  case "$f" in node_modules/uplot/dist/*) name="web/$(basename "$f")" ;; *) name="$f" ;; esac
  printf '	.balign 16\nasset_data_%d:\n	.incbin "%s"\nasset_end_%d:\n	.byte 0\n' "$i" "$abs" "$i"
  printf 'asset_name_%d:\n	.asciz "%s"\n' "$i" "$name"
  i=$((i + 1))
done
echo '	.section .data.rel.ro,"aw"'
echo '	.balign 8'
echo '	.globl anneald_assets'
echo 'anneald_assets:'
j=0
while [ "$j" -lt "$i" ]; do
  printf '	.quad asset_name_%d, asset_data_%d, asset_end_%d - asset_data_%d\n' "$j" "$j" "$j" "$j"
  j=$((j + 1))
done
echo '	.quad 0, 0, 0'
echo '	.section .note.GNU-stack,"",@progbits'
