#!/usr/bin/env python3
"""Writes the seed corpus of tar_fuzz into corpus/: tiny archives in every layout the reader
takes (podman save, docker save <= 24 and >= 25, oci-archive, compressed layers and outer
compression) and hostile ones (absolute path, "..", escaping links, device, lying size).
Deterministic: mtime 0, gzip without a timestamp. Run from anywhere; needs python3 (and zstd
for the zstd cases)."""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def sha(data):
    return hashlib.sha256(data).hexdigest()


def tar(entries, fmt=tarfile.USTAR_FORMAT):
    """entries: (name, kind, payload) with kind file|dir|sym|link|chr."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            data = None
            if kind == "file":
                data = payload
                info.size = len(data)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "sym":
                info.type = tarfile.SYMTYPE
                info.linkname = payload
            elif kind == "link":
                info.type = tarfile.LNKTYPE
                info.linkname = payload
            elif kind == "chr":
                info.type = tarfile.CHRTYPE
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    # Keep the end-of-archive blocks, drop the record padding after them: smaller seeds.
    data = buf.getvalue()
    end = len(data)
    while end >= 512 and data[end - 512:end] == bytes(512):
        end -= 512
    return data[:end + 1024]


def gz(data):
    return gzip.compress(data, mtime=0)


def zst(data):
    if not shutil.which("zstd"):
        return None
    return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout


def image(files, label):
    layer = tar([(n, "file", c) for n, c in files])
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"l": label}},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(layer)]}},
                        separators=(",", ":")).encode()
    return layer, config


def docker_manifest(config_path, tags, layers):
    return json.dumps([{"Config": config_path, "RepoTags": tags, "Layers": layers}]).encode()


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {}
    layer, config = image([("hello.txt", b"hello\n")], "a")
    lh, ch = sha(layer), sha(config)

    # podman save: <diffid>.tar, <config>.json, <id>/layer.tar symlinks, manifest.json last.
    podman = tar([(lh + ".tar", "file", layer), (ch + ".json", "file", config),
                  ("abcd/layer.tar", "sym", "../" + lh + ".tar"), ("abcd/VERSION", "file", b"1.0"),
                  ("abcd/json", "file", b'{"id":"abcd"}'),
                  ("manifest.json", "file", docker_manifest(ch + ".json", ["localhost/a:1"], [lh + ".tar"])),
                  ("repositories", "file", b'{"localhost/a":{"1":"abcd"}}')])
    seeds["01-podman-docker-archive.tar"] = podman
    seeds["02-podman-docker-archive.tar.gz"] = gz(podman)

    # docker save <= 24: <v1id>/layer.tar regular files.
    seeds["03-docker-legacy.tar"] = tar([
        ("v1id/", "dir", None), ("v1id/VERSION", "file", b"1.0"), ("v1id/json", "file", b"{}"),
        ("v1id/layer.tar", "file", layer), (ch + ".json", "file", config),
        ("manifest.json", "file", docker_manifest(ch + ".json", ["busybox:latest"], ["v1id/layer.tar"])),
        ("repositories", "file", b'{"busybox":{"latest":"v1id"}}')])

    # Compressed layer members (ggcr style names).
    seeds["04-gzip-layer.tar"] = tar([
        ("sha256:" + ch, "file", config), ("l.tar.gz", "file", gz(layer)),
        ("manifest.json", "file", docker_manifest("sha256:" + ch, ["ex.com/c:1"], ["l.tar.gz"]))])
    z = zst(layer)
    if z is not None:
        seeds["05-zstd-layer.tar"] = tar([
            ("c.json", "file", config), ("l.tar.zst", "file", z),
            ("manifest.json", "file", docker_manifest("c.json", ["ex.com/z:1"], ["l.tar.zst"]))])

    # OCI layout (oci-archive; docker save >= 25 adds manifest.json).
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": "sha256:" + ch, "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                       "digest": "sha256:" + lh, "size": len(layer)}]}).encode()
    mh = sha(manifest)
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + mh,
         "size": len(manifest), "annotations": {"io.containerd.image.name": "docker.io/library/a:1",
                                                "org.opencontainers.image.ref.name": "1"}}]}).encode()
    oci = [("oci-layout", "file", b'{"imageLayoutVersion":"1.0.0"}'), ("blobs/", "dir", None),
           ("blobs/sha256/", "dir", None), ("blobs/sha256/" + lh, "file", layer),
           ("blobs/sha256/" + ch, "file", config), ("blobs/sha256/" + mh, "file", manifest),
           ("index.json", "file", index)]
    seeds["06-oci-archive.tar"] = tar(oci)
    seeds["07-docker25.tar"] = tar(oci + [("manifest.json", "file", docker_manifest(
        "blobs/sha256/" + ch, ["a:1"], ["blobs/sha256/" + lh]))], fmt=tarfile.PAX_FORMAT)

    # Hostile.
    seeds["10-absolute.tar"] = tar([("/etc/passwd", "file", b"x")])
    seeds["11-dotdot.tar"] = tar([("a/../../evil", "file", b"x")])
    seeds["12-symlink-escape.tar"] = tar([("l", "sym", "../../etc"), ("l/x", "file", b"x")])
    seeds["13-hardlink-escape.tar"] = tar([("h", "link", "../outside")])
    seeds["14-device.tar"] = tar([("dev/null", "chr", None)])
    liar = bytearray(tar([("big", "file", b"tiny")]))
    liar[124:136] = b"77777777777\0"  # declares 8 GiB, holds 4 bytes
    liar[148:156] = b"        "
    liar[148:156] = ("%06o\0 " % sum(liar[:512])).encode()
    seeds["15-lying-size.tar"] = bytes(liar)
    seeds["16-gzip-bomb.tar.gz"] = gz(tar([("zeros", "file", bytes(2 << 20))]))
    seeds["17-diffid-mismatch.tar"] = tar([
        ("c.json", "file", config), ("l.tar", "file", layer + b"x"),
        ("manifest.json", "file", docker_manifest("c.json", ["a:1"], ["l.tar"]))])

    for name in os.listdir(OUT):
        os.remove(os.path.join(OUT, name))
    for name, data in sorted(seeds.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
