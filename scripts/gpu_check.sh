#!/usr/bin/env bash
# GPU check: install hgtrain from this checkout without the network, then benchmark full training
# steps of the three backbones at their training sizes, fp32 eager against bf16 + channels_last
# (+ fused Adam and cudnn.benchmark, + torch.compile), plus activation checkpointing and the data
# pipeline, and their inference with decoding at their test sizes (batch-1 latency and batch-N
# throughput; fp32 eager against bf16 + channels_last, compiled and exported), within a time budget
# (default 8 minutes).
#
#   scripts/gpu_check.sh [--out DIR] [--device cuda|cpu] [--tiny] [--skip-compile]
#                        [--budget SECONDS] [--wheels DIR] [--no-install]
#
#   --out DIR       where results go (default: $OUT if set, else ./gpu_check_results)
#   --device        cuda (default) or cpu
#   --tiny          tiny inputs, batch 2, one step or call: a dry run of this script (e.g. on a CPU)
#   --skip-compile  leave out the torch.compile runs (minutes each on a CPU)
#   --budget S      stop starting runs after S seconds in all (default 480); each run is also
#                   cut off when the budget runs out
#   --wheels DIR    install missing dependencies (lightning, torchmetrics, ...) from wheel files
#                   in DIR (pip --no-index); PyTorch itself must already be installed
#   --no-install    run from the source tree (PYTHONPATH) instead of `pip install -e .`
#
# Writes DIR/<run>.json (one `hgtrain benchmark --json` result per run) and DIR/<run>.txt (the
# configuration it ran and its summary line), DIR/table.md (Markdown tables: training, then
# inference, with speed-ups against fp32 eager, then the data pipeline of the --data_workers runs:
# samples/s per worker, workers, whether data limits training), DIR/environment.txt and DIR/log.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-gpu_check_results}"
device=cuda
tiny=0
compile=1
budget=480
wheels=""
install=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --device) device="$2"; shift 2 ;;
        --tiny) tiny=1; shift ;;
        --skip-compile) compile=0; shift ;;
        --budget) budget="$2"; shift 2 ;;
        --wheels) wheels="$2"; shift 2 ;;
        --no-install) install=0; shift ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
log="$out/log.txt"
: > "$log"
say() { echo "$@" | tee -a "$log"; }

python="${PYTHON:-$(command -v python || command -v python3)}"
start=$SECONDS

# 1. PyTorch and the device must be there already.
if ! "$python" -c "import torch" 2>>"$log"; then
    say "gpu_check: $python cannot import torch; install PyTorch first (or set PYTHON=...)."
    exit 1
fi
if [[ "$device" == cuda ]] && ! "$python" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    say "gpu_check: torch sees no CUDA device; run with --device cpu for a dry run."
    exit 1
fi

# 2. Dependencies other than torch, from local wheels only, if asked.
if [[ -n "$wheels" ]]; then
    say "installing dependencies from $wheels (no index)"
    "$python" -m pip install --no-index --find-links "$wheels" \
        lightning torchmetrics torchvision jsonargparse numpy pillow >>"$log" 2>&1
fi

# 3. The project itself, without fetching anything; from the source tree if pip cannot.
if [[ "$install" == 1 ]] \
    && "$python" -m pip install --no-deps --no-build-isolation --no-index -e . >>"$log" 2>&1; then
    say "installed hgtrain (editable, no dependencies fetched)"
else
    [[ "$install" == 1 ]] && say "pip could not install hgtrain offline (see $log)"
    say "running from the source tree"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$python" -c "import hgtrain.tools.benchmark" 2>>"$log"; then
    say "gpu_check: hgtrain.tools.benchmark does not import (see the end of $log). A missing package"
    say "(lightning, torchmetrics, torchvision, numpy, pillow) can be brought as wheels:"
    say "  pip download -d wheels lightning torchmetrics   # on a machine with network"
    say "  scripts/gpu_check.sh --wheels wheels"
    exit 1
fi

{
    date -u
    git rev-parse HEAD 2>/dev/null || true
    "$python" -c "import torch, platform; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'python', platform.python_version())"
    command -v nvidia-smi >/dev/null && nvidia-smi || true
    command -v lscpu >/dev/null && lscpu | head -20 || true
} > "$out/environment.txt" 2>&1

# 4. The runs: name, mode (train or infer), backbone, options; the input is the variant's training
#    size (training) or test size (inference; the same numbers), the batch its mode's. Inference
#    times batch-1 latency and batch-N throughput. Most important first (Squeeze's inference
#    latency is its headline number), so a budget that runs out costs the least telling ones.
if [[ "$tiny" == 1 ]]; then
    declare -A size=([cornernet]=127 [saccade]=63 [squeeze]=127)
    declare -A batch=([cornernet]=2 [saccade]=2 [squeeze]=2)
    declare -A infer_batch=([cornernet]=2 [saccade]=2 [squeeze]=2)
    steps=(--steps 1 --warmup 1)
    infer_steps=(--steps 1 --warmup 1)
    workers=1
else
    declare -A size=([cornernet]=511 [saccade]=255 [squeeze]=511)
    declare -A batch=([cornernet]=8 [saccade]=16 [squeeze]=16)
    declare -A infer_batch=([cornernet]=8 [saccade]=32 [squeeze]=16)
    steps=(--steps 10 --warmup 3)
    infer_steps=(--steps 20 --warmup 5)
    workers=$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))
fi
fast=(--precision bf16 --channels_last true --fused_optimizer true --cudnn_benchmark true)
infer_fast=(--precision bf16 --channels_last true --cudnn_benchmark true)
runs=(
    "squeeze_infer_fp32_eager infer squeeze"
    "squeeze_fp32_eager train squeeze"
    "squeeze_bf16_channels_last train squeeze --precision bf16 --channels_last true"
    "squeeze_infer_bf16_fast infer squeeze ${infer_fast[*]}"
    "squeeze_bf16_fast train squeeze ${fast[*]} --data_workers $workers"
    "cornernet_fp32_eager train cornernet"
    "cornernet_infer_fp32_eager infer cornernet"
    "saccade_infer_fp32_eager infer saccade"
    "cornernet_bf16_fast train cornernet ${fast[*]} --data_workers $workers"
    "cornernet_infer_bf16_fast infer cornernet ${infer_fast[*]}"
    "saccade_infer_bf16_fast infer saccade ${infer_fast[*]}"
    "saccade_fp32_eager train saccade"
    "saccade_bf16_fast train saccade ${fast[*]} --data_workers $workers"
    "cornernet_fp32_checkpoint_stacks train cornernet --activation_checkpointing stacks"
    "cornernet_fp32_checkpoint_blocks train cornernet --activation_checkpointing blocks"
    "cornernet_bf16_fast_checkpoint_stacks train cornernet ${fast[*]} --activation_checkpointing stacks"
    "cornernet_bf16_fast_checkpoint_blocks train cornernet ${fast[*]} --activation_checkpointing blocks"
)
if [[ "$compile" == 1 ]]; then
    runs+=(
        "squeeze_bf16_fast_compile train squeeze ${fast[*]} --compile true"
        "squeeze_infer_bf16_fast_compile infer squeeze ${infer_fast[*]} --compile true"
    )
fi
runs+=(
    "squeeze_infer_bf16_fast_export infer squeeze ${infer_fast[*]} --export true"
    "cornernet_bf16_channels_last train cornernet --precision bf16 --channels_last true"
    "saccade_bf16_channels_last train saccade --precision bf16 --channels_last true"
    "squeeze_fp32_channels_last train squeeze --channels_last true"
    "squeeze_bf16 train squeeze --precision bf16"
    "squeeze_fp32_fused_optimizer train squeeze --fused_optimizer true"
    "squeeze_fp32_cudnn_benchmark train squeeze --cudnn_benchmark true"
)
if [[ "$compile" == 1 ]]; then
    runs+=(
        "cornernet_infer_bf16_fast_compile infer cornernet ${infer_fast[*]} --compile true"
        "saccade_infer_bf16_fast_compile infer saccade ${infer_fast[*]} --compile true"
        "cornernet_bf16_fast_compile train cornernet ${fast[*]} --compile true"
        "saccade_bf16_fast_compile train saccade ${fast[*]} --compile true"
    )
fi

done_files=()
for run in "${runs[@]}"; do
    read -r name mode backbone options <<< "$run"
    left=$(( budget - (SECONDS - start) ))
    if (( left < 20 )); then
        say "skipped $name: time budget spent"
        continue
    fi
    if [[ "$mode" == infer ]]; then
        shape=(--mode inference --batch_size "${infer_batch[$backbone]}" "${infer_steps[@]}")
    else
        shape=(--batch_size "${batch[$backbone]}" "${steps[@]}")
    fi
    # shellcheck disable=SC2086  # options are words on purpose
    if timeout "$left" "$python" -m hgtrain.tools.benchmark --backbone "$backbone" \
        --input_size "${size[$backbone]}" --device "$device" "${shape[@]}" \
        $options --json "$out/$name.json" >"$out/$name.txt" 2>>"$log"; then
        done_files+=("$out/$name.json")
        say "$(cat "$out/$name.txt")"
        say "done $name ($(( SECONDS - start )) s so far)"
    else
        say "FAILED $name (exit $?, see $log)"
    fi
done

if (( ${#done_files[@]} > 0 )); then
    "$python" -m hgtrain.tools.benchmark --table "${done_files[@]}" > "$out/table.md"
    say ""
    cat "$out/table.md" | tee -a "$log"
fi
say "gpu_check: ${#done_files[@]} of ${#runs[@]} runs in $(( SECONDS - start )) s; results in $out"
