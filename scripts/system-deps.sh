#!/usr/bin/env bash
# System libraries the report needs: a Chinese font for the charts and
# WeasyPrint's Pango/HarfBuzz for the PDF. Installs them with apt-get when
# missing (as root, or with sudo); otherwise says what to run.
set -euo pipefail

need=()
fc-list :lang=zh 2>/dev/null | grep -q . || need+=(fontconfig fonts-wqy-microhei)
for lib in libpango-1.0.so.0:libpango-1.0-0 libpangoft2-1.0.so.0:libpangoft2-1.0-0 \
           libharfbuzz-subset.so.0:libharfbuzz-subset0; do
  ldconfig -p 2>/dev/null | grep -q "${lib%%:*}" || need+=("${lib##*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "Koubei's reports need: ${need[*]}. Run as root: apt-get install -y ${need[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "Koubei's reports need a Chinese font and Pango (${need[*]} on Debian); install them" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
