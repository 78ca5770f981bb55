#!/usr/bin/env bash
# Short fuzz sessions of every cargo-fuzz target in fuzz/ (issue 7, hostile input).
#
#   FUZZ_SECONDS=20 fuzz/run.sh [target...]      (default: every target, 20 s each)
#
# Builds all targets once (the first build compiles the whole dependency tree with sanitizer
# flags into fuzz/target: several minutes), then runs each one from a copy of its seeds in a
# temporary directory, so the corpus in the repository never grows. Exits non-zero when any
# target crashes, fails an assertion, leaks, times out on an input or runs out of memory; the
# offending input is kept under fuzz/artifacts/<target>/ and the reproduction command printed.
# Only stable Rust is needed: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-20}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if (($#)); then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

start=$SECONDS
if ((${#targets[@]} == 1)); then
  nice cargo fuzz build "${targets[0]}"
else
  nice cargo fuzz build
fi
echo "fuzz: build took $((SECONDS - start)) s"

passed=0
failed=()
for target in "${targets[@]}"; do
  corpus="$work/corpus/$target"
  mkdir -p "$corpus"
  cp corpus/"$target"/seed-* "$corpus"/ 2>/dev/null || true
  log="$work/$target.log"
  echo "fuzz: $target for ${seconds} s"
  t0=$SECONDS
  if nice cargo fuzz run "$target" "$corpus" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1; then
    passed=$((passed + 1))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    echo "fuzz: $target ok: ${runs:-?} runs, ${rate:-?} exec/s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) inputs, $((SECONDS - t0)) s"
  else
    failed+=("$target")
    echo "fuzz: $target FAILED; the end of its log:"
    tail -n 80 "$log"
  fi
done

echo "fuzz: total $((SECONDS - start)) s"
echo "fuzz: ${passed} passed, ${#failed[@]} failed"
if ((${#failed[@]})); then
  echo "fuzz: failing targets: ${failed[*]}" >&2
  exit 1
fi
