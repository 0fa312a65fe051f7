#!/bin/sh
# Writes to OUT the fenced code block that follows the line
# `<!-- test: NAME -->` in README.md, so that tests compile or run the
# README's snippets exactly as they stand there.
set -eu
name=${1:?usage: tests/readme_snippet.sh NAME OUT [README]}
out=${2:?usage: tests/readme_snippet.sh NAME OUT [README]}
readme=${3:-README.md}
awk -v tag="<!-- test: $name -->" '
    $0 == tag { armed = 1; next }
    armed == 1 && /^```/ { armed = 2; next }
    armed == 2 && /^```/ { found = 1; exit }
    armed == 2 { print }
    END { exit found ? 0 : 1 }
' "$readme" > "$out" || { echo "readme_snippet: no snippet tagged '$name' in $readme" >&2; exit 1; }
