#!/bin/sh
# tests/fuzz/make-seeds.sh: writes the fuzzers' committed seed corpora (make fuzz copies them
# to build/fuzz/corpus/ before a run, so this directory is never written by fuzzing).
#   corpus/gguf/: `tessera gen --shape micro` models, 7-16 KB each (one layer, 32 tokens, dims
#     of 32): a dense llama at q4_0, qwen2 (biases) at the q4_k_m mix, qwen3 (per-head Q/K
#     norms) at q8_0, qwen3moe and qwen2moe (shared experts) at q4_0, and the Gated-DeltaNet
#     hybrids qwen35, qwen35moe, qwen3next at q4_0 (GDN + gated attention, 15-31 KB). gen is
#     deterministic, so
#     rerunning this rewrites the same bytes. Named without .gguf: .gitignore keeps models out.
#   corpus/tokenizer/: short texts for the tokenizers' cases: prose, whitespace runs, digits
#     and contractions, other scripts, special-token texts, U+0085 and U+2581, invalid UTF-8.
# Usage: sh tests/fuzz/make-seeds.sh [path/to/tessera]   (default build/release/tessera)
set -eu
BIN=${1:-build/release/tessera}
DIR=$(dirname "$0")/corpus
mkdir -p "$DIR/gguf" "$DIR/tokenizer"
for m in llama:q4_0 qwen2:q4_k_m qwen3:q8_0 qwen3moe:q4_0 qwen2moe:q4_0 qwen35:q4_0 \
         qwen35moe:q4_0 qwen3next:q4_0; do
    arch=${m%%:*}
    type=${m##*:}
    "$BIN" gen --shape micro --arch "$arch" --type "$type" -t 1 -o "$DIR/gguf/$arch-$type.tmp"
    mv "$DIR/gguf/$arch-$type.tmp" "$DIR/gguf/$arch-$type"
done
T=$DIR/tokenizer
printf 'Once upon a time, there was a little girl named Lily. She loved to play.' > "$T/prose"
printf '  two  spaces\tand a tab\n\nnew lines \r\n   end   ' > "$T/whitespace"
printf "I'VE 12345 don't we'll 3.14159 x=1+2; 1000000" > "$T/digits"
# café naïve 你好世界 한국어 привет, an emoji, e + a combining acute
{
    printf 'caf\303\251 na\303\257ve '
    printf '\344\275\240\345\245\275\344\270\226\347\225\214 \355\225\234\352\265\255\354\226\264 '
    printf '\320\277\321\200\320\270\320\262\320\265\321\202 \360\237\230\200 e\314\201'
} > "$T/unicode"
printf '<s>Hi</s><unk><|endoftext|><|user|> x <|assistant|>' > "$T/special"
printf 'a\302\205b \342\226\201c\342\226\201\342\226\201 \343\200\200d' > "$T/spaces"
printf 'ok\377\376 bad \303 \342\202 \300\257 \355\240\200 end' > "$T/invalid"
ls -l "$DIR/gguf" "$DIR/tokenizer"
