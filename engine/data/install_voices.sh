#!/usr/bin/env bash
# Install the Debian voices the dataset recipe renders with (MBROLA, espeak-ng, flite, festival, sox).
# MBROLA and its voices live in Debian's contrib/non-free components, which a stock image does not enable:
# this adds them in a separate deb822 file rather than editing the distribution's own sources.
set -euo pipefail

PACKAGES=(mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 espeak-ng flite festival
          festvox-kallpc16k festvox-kdlpc16k sox)
SOURCES_FILE=/etc/apt/sources.list.d/autovoice-contrib-nonfree.sources

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install_voices: all voices present"
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "install_voices: error: missing Debian packages: ${missing[*]}" >&2
  echo "install_voices: run this script as root (sudo $0), or install them with apt-get" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "install_voices: error: apt-get not found; install by hand: ${missing[*]}" >&2
  exit 1
fi

codename=bookworm
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  . /etc/os-release
  codename="${VERSION_CODENAME:-bookworm}"
fi
if ! grep -rqsE '^\s*Components:.*\bnon-free\b' /etc/apt/sources.list.d/ \
   && ! grep -qsE '^deb .*\bnon-free\b' /etc/apt/sources.list; then
  echo "install_voices: enabling contrib non-free in $SOURCES_FILE"
  cat > "$SOURCES_FILE" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $codename ${codename}-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

echo "install_voices: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install_voices: done"
