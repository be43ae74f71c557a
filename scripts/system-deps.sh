#!/usr/bin/env bash
# System libraries the report needs: a Chinese font for the charts and
# WeasyPrint's Pango/HarfBuzz for the PDF; and Chromium for the case board's
# browser tests. Installs them with apt-get when missing (as root, or with
# sudo); otherwise says what to run. Without Chromium the browser tests skip
# and say why; the report's libraries are required.
set -euo pipefail

need=()
fc-list :lang=zh 2>/dev/null | grep -q . || need+=(fontconfig fonts-wqy-microhei)
for lib in libpango-1.0.so.0:libpango-1.0-0 libpangoft2-1.0.so.0:libpangoft2-1.0-0 \
           libharfbuzz-subset.so.0:libharfbuzz-subset0; do
  ldconfig -p 2>/dev/null | grep -q "${lib%%:*}" || need+=("${lib##*:}")
done
optional=()
[ -x /usr/bin/chromium ] || optional+=(chromium)
[ ${#need[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  sudo="none"
fi
if [ "$sudo" = "none" ] || ! command -v apt-get >/dev/null; then
  if [ ${#optional[@]} -gt 0 ]; then
    echo "Chromium is missing and cannot be installed here: the browser tests will skip" \
         "(Debian: apt-get install -y chromium)" >&2
  fi
  if [ ${#need[@]} -gt 0 ]; then
    echo "Koubei's reports need a Chinese font and Pango (${need[*]} on Debian);" \
         "run as root: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  exit 0
fi
echo "installing system packages: ${need[*]} ${optional[*]}"
$sudo apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ${#optional[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${optional[@]}" >/dev/null ||
    echo "could not install Chromium: the browser tests will skip" >&2
fi
