# Sourced by the benchmark scripts after `set -euo pipefail`:
#   source "$(dirname "${BASH_SOURCE[0]}")/nnunet_workdir.sh" "$workdir"
# nnU-Net's raw / preprocessed / results folders under the work folder, one worker for nnU-Net's default process
# count (more thrash a 2-core machine and spoil the timings), and the plugin's trainer folder for nnU-Net's lookup.
mkdir -p "$1"/{raw,preprocessed,results}
export nnUNet_raw="$1/raw" nnUNet_preprocessed="$1/preprocessed" nnUNet_results="$1/results"
export nnUNet_def_n_proc=1
plugin_env=$(nnunet25d env)  # stops the script here if the plugin is not installed (an eval of nothing would not)
eval "$plugin_env"
