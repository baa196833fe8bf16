#!/usr/bin/env bash
# Runs every fuzz target (or those named) for N minutes each and collects what they
# find into fuzz/findings/ (gitignored). Not part of CI: a run takes N minutes per target.
#
#   fuzz/run_all.sh [-m MINUTES] [-j PARALLEL] [TARGET...]
#
# Rust targets (cargo fuzz / libFuzzer, AddressSanitizer, debug assertions):
#   core_bpe utf8_stream chunking trainer scanners
# Python targets (atheris, against the installed fastllm in .venv):
#   py_tiktoken_file py_hf_json py_fastllm_json py_gpt2_vocab py_open_tokenizer py_tokenizer_api
#   py_hf_pipeline (needs HF tokenizers in .venv: the reference)
#
# Needs: cargo-fuzz (`cargo install cargo-fuzz`; nightly features through RUSTC_BOOTSTRAP=1
# on a stable toolchain), and .venv with fastllm built (`maturin develop --release`) and
# atheris (`pip install atheris`). A target that crashes is restarted until its time is
# up; each crashing input lands in fuzz/findings/TARGET/ and the log in fuzz/findings/TARGET.log.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
MINUTES=10
PARALLEL=1
while getopts "m:j:h" opt; do
  case $opt in
    m) MINUTES=$OPTARG ;;
    j) PARALLEL=$OPTARG ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

RUST_TARGETS=(core_bpe utf8_stream chunking trainer scanners)
PY_TARGETS=(py_tiktoken_file py_hf_json py_fastllm_json py_gpt2_vocab py_open_tokenizer py_tokenizer_api py_hf_pipeline)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${RUST_TARGETS[@]}" "${PY_TARGETS[@]}")

PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
CORPUS=$ROOT/fuzz/corpus
FINDINGS=$ROOT/fuzz/findings
mkdir -p "$CORPUS" "$FINDINGS"
export RUSTC_BOOTSTRAP=1 FASTLLM_OFFLINE=1 FASTLLM_CACHE=$FINDINGS/.cache

is_rust() { [[ " ${RUST_TARGETS[*]} " == *" $1 "* ]]; }

"$PYTHON" fuzz/make_seeds.py "$CORPUS" || exit 1
for t in "${TARGETS[@]}"; do
  if is_rust "$t"; then
    (cd fuzz && cargo fuzz build -O -a) || exit 1
    break
  fi
done

# Runs one target until MINUTES are spent, restarting it after each crash.
run_target() {
  local t=$1 end=$(( $(date +%s) + MINUTES * 60 )) log=$FINDINGS/$1.log runs=0
  mkdir -p "$CORPUS/$t" "$FINDINGS/$t"
  : > "$log"
  while :; do
    local left=$(( end - $(date +%s) ))
    [ "$left" -le 5 ] && break
    local flags=(-max_total_time="$left" -timeout=20 -rss_limit_mb=4096
                 -dict="$CORPUS/fuzz.dict" -artifact_prefix="$FINDINGS/$t/" -print_final_stats=1)
    if is_rust "$t"; then
      # Structured inputs: full-size ones from the start (libFuzzer's slow length ramp
      # kept them under 100 bytes for a whole 10-minute run).
      flags+=(-max_len=4096 -len_control=0)
      (cd fuzz && cargo fuzz run -O -a "$t" "$CORPUS/$t" -- "${flags[@]}") >> "$log" 2>&1
    else
      case $t in
        py_tokenizer_api) flags+=(-max_len=4096) ;;
        # Its input is a list of choices: full size from the start, as the Rust targets.
        py_hf_pipeline) flags+=(-max_len=4096 -len_control=0) ;;
        # Whole tokenizer files: room for the seeds (fastllm's own files, tens of KB).
        *) flags+=(-max_len=131072) ;;
      esac
      "$PYTHON" "fuzz/python/$t.py" "$CORPUS/$t" "${flags[@]}" >> "$log" 2>&1
    fi
    runs=$((runs + 1))
  done
  local execs
  execs=$(grep -h "stat::number_of_executed_units" "$log" | awk '{s += $2} END {print s + 0}')
  echo "$t: $MINUTES min, $runs run(s), $execs executions, $(find "$FINDINGS/$t" -type f | wc -l) finding file(s)"
}

pids=()
for t in "${TARGETS[@]}"; do
  if ! is_rust "$t" && [ ! -f "fuzz/python/$t.py" ]; then
    echo "unknown target $t" >&2; exit 2
  fi
  run_target "$t" &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do sleep 5; done
done
wait
echo "findings (crashing inputs, logs): $FINDINGS"
