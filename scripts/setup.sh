#!/usr/bin/env bash
# Set up clear_ray in ./.venv on a fresh machine: what the README's two commands run.
#   scripts/setup.sh          runtime (enough for `clear-ray demo` and `clear-ray bench`)
#   scripts/setup.sh --test   plus the test tools and the S3 server
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[[ "${1:-}" == "--test" ]] && with_tests=1

# Real fonts (Noto: Latin/Cyrillic/Arabic/CJK) and Chinese text (fortunes-zh) come from
# Debian; the subtitle generator finds them at run time. Skipped where there is no apt
# (macOS: the demo then falls back to DejaVu/Pillow fonts).
if command -v apt-get >/dev/null; then
    sudo_cmd=""
    [[ $(id -u) != 0 ]] && sudo_cmd="sudo"
    if ! dpkg -s fonts-noto-core fonts-noto-cjk fortunes-zh >/dev/null 2>&1; then
        $sudo_cmd apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
            fonts-noto-core fonts-noto-cjk fortunes-zh
    fi
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: pip would otherwise pick the newest CUDA build for diffsynth.
.venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
if [[ $with_tests == 1 ]]; then
    .venv/bin/python -m pip install -q -e '.[test]'
else
    .venv/bin/python -m pip install -q -e .
fi
