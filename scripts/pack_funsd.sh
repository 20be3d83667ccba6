#!/usr/bin/env bash
# Packs FUNSD (training_data/ + testing_data/) and roberta-base's vocab.json + merges.txt into .deps/funsd.tar
# (an ignored path), so that the device tool can carry it to the GPU machine, which reaches nothing outside:
#   bash scripts/pack_funsd.sh /work/data/funsd /work/data/roberta     # -> .deps/funsd.tar (~28 MB)
# On the GPU machine: mkdir -p /tmp/funsd && tar -xf .deps/funsd.tar -C /tmp/funsd
#   -> /tmp/funsd/{training_data,testing_data,roberta}
set -euo pipefail
data=${1:?FUNSD folder}; vocab=${2:?folder with vocab.json + merges.txt}
cd "$(dirname "$0")/.."
mkdir -p .deps
stage=$(mktemp -d)
cp -r "$data/training_data" "$data/testing_data" "$stage/"
mkdir "$stage/roberta" && cp "$vocab/vocab.json" "$vocab/merges.txt" "$stage/roberta/"
tar -cf .deps/funsd.tar -C "$stage" training_data testing_data roberta
rm -rf "$stage"
ls -l .deps/funsd.tar
