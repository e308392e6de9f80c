#include "oci/tar_reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <set>
#include <utility>
#include <vector>

#include "base/error.h"

namespace stowage::oci {
namespace {

constexpr std::size_t kBlockSize = std::size_t{1} << 20;

[[noreturn]] void refuse(std::string message) {
  throw Error(Code::kInvalidArgument, std::move(message));
}

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveFree>;

// Registers the decompression filters we accept. Every one must be built into libarchive: a filter
// that would run an external program (ARCHIVE_WARN) is refused, as is a missing one.
void support_filters(archive* a) {
  const auto need = [&](int rc, const char* what) {
    if (rc != ARCHIVE_OK) {
      throw Error(Code::kInternal, fmt::format("libarchive has no built-in {} support", what));
    }
  };
  need(archive_read_support_filter_none(a), "plain");
  need(archive_read_support_filter_gzip(a), "gzip");
  need(archive_read_support_filter_zstd(a), "zstd");
  need(archive_read_support_filter_bzip2(a), "bzip2");
  need(archive_read_support_filter_xz(a), "xz");
}

// Splits on '/', drops empty and "." components. Returns false on a ".." component.
bool split_clean(std::string_view path, std::vector<std::string_view>& out) {
  out.clear();
  while (!path.empty()) {
    const auto slash = path.find('/');
    const std::string_view part = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") return false;
    out.push_back(part);
  }
  return true;
}

std::string join(const std::vector<std::string_view>& parts, std::size_t count) {
  std::string out;
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) out.push_back('/');
    out.append(parts[i]);
  }
  return out;
}

// Callback glue shared by both readers: libarchive is C, so exceptions from the source are caught
// here, kept, and rethrown by the caller once libarchive has returned.
struct SourceGlue {
  ByteSource source;
  std::vector<char> buffer;
  std::exception_ptr error;
  std::uint64_t consumed = 0;

  static la_ssize_t read(archive* a, void* client, const void** out) {
    auto* self = static_cast<SourceGlue*>(client);
    if (self->error) return -1;
    try {
      const std::size_t n = self->source(self->buffer.data(), self->buffer.size());
      self->consumed += n;
      *out = self->buffer.data();
      return static_cast<la_ssize_t>(n);
    } catch (...) {
      self->error = std::current_exception();
      archive_set_error(a, EIO, "reading the input failed");
      return -1;
    }
  }

  void rethrow() {
    if (error) std::rethrow_exception(std::exchange(error, nullptr));
  }
};

}  // namespace

// ---- TarReader -------------------------------------------------------------------------------

struct TarReader::Impl {
  ArchivePtr a;
  TarLimits limits;
  std::string name;
  std::unique_ptr<SourceGlue> glue;  // stable address for libarchive
  std::uint64_t entries = 0;
  std::uint64_t declared_total = 0;
  std::set<std::string, std::less<>> symlinks;
  std::string current;  // path of the current entry, for messages
  bool in_entry = false;
  bool done = false;

  std::string where() const {
    return current.empty() ? name : fmt::format("{}: entry \"{}\"", name, current);
  }

  [[noreturn]] void fail_archive(std::string_view doing) {
    if (glue) glue->rethrow();
    const char* msg = archive_error_string(a.get());
    const int err = archive_errno(a.get());
    const std::string text = msg != nullptr ? msg : "unknown error";
    if (err == ENOENT) {
      throw Error(Code::kNotFound, fmt::format("{}: {}: {}", name, doing, text));
    }
    refuse(fmt::format("{}: {}: {}", where(), doing, text));
  }

  void check_ratio() {
    if (limits.max_ratio == 0) return;
    const auto out = static_cast<std::uint64_t>(archive_filter_bytes(a.get(), 0));
    const auto in = static_cast<std::uint64_t>(archive_filter_bytes(a.get(), -1));
    if (out > limits.ratio_floor && out / limits.max_ratio > in) {
      refuse(
          fmt::format("{}: expands from {} to more than {} bytes (over {}x): refused as a "
                      "size bomb",
                      where(), in, out, limits.max_ratio));
    }
  }

  // Refuses a path whose directories include a symlink seen earlier in the archive: writing it
  // (or linking to it) would follow that symlink.
  void check_no_symlink_prefix(const std::vector<std::string_view>& parts, std::string_view what) {
    if (symlinks.empty()) return;
    std::string prefix;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      if (i > 0) prefix.push_back('/');
      prefix.append(parts[i]);
      if (symlinks.contains(prefix)) {
        refuse(fmt::format("{}: {} goes through the symlink \"{}\"", where(), what, prefix));
      }
    }
  }

  TarEntry make_entry(archive_entry* e) {
    TarEntry out;
    const char* raw_path = archive_entry_pathname(e);
    current = raw_path != nullptr ? raw_path : "";
    if (raw_path == nullptr || *raw_path == '\0') refuse(where() + ": entry has no path");
    const std::string_view raw(raw_path);
    if (raw.size() > limits.max_path_length) {
      refuse(fmt::format("{}: path longer than {} bytes", where(), limits.max_path_length));
    }
    if (raw.front() == '/') refuse(where() + ": absolute path");
    std::vector<std::string_view> parts;
    if (!split_clean(raw, parts)) refuse(where() + ": path contains \"..\"");
    out.path = join(parts, parts.size());

    const char* hardlink = archive_entry_hardlink(e);
    const mode_t type = archive_entry_filetype(e);
    if (hardlink != nullptr) {
      out.type = TarEntryType::kHardlink;
    } else {
      switch (type) {
        case AE_IFREG: out.type = TarEntryType::kRegular; break;
        case AE_IFDIR: out.type = TarEntryType::kDirectory; break;
        case AE_IFLNK: out.type = TarEntryType::kSymlink; break;
        case AE_IFIFO: out.type = TarEntryType::kFifo; break;
        case AE_IFCHR: refuse(where() + ": character device entries are refused");
        case AE_IFBLK: refuse(where() + ": block device entries are refused");
        case AE_IFSOCK: refuse(where() + ": socket entries are refused");
        default: refuse(fmt::format("{}: unknown entry type {:o}", where(), type));
      }
    }
    if (out.path.empty() && out.type != TarEntryType::kDirectory) {
      refuse(where() + ": only a directory may name the archive root");
    }
    check_no_symlink_prefix(parts, "path");

    std::vector<std::string_view> target_parts;
    if (out.type == TarEntryType::kSymlink) {
      const char* target = archive_entry_symlink(e);
      if (target == nullptr || *target == '\0') refuse(where() + ": symlink without a target");
      out.link_target = target;
      if (out.link_target.size() > limits.max_path_length) {
        refuse(fmt::format("{}: symlink target longer than {} bytes", where(),
                           limits.max_path_length));
      }
      // Resolve lexically from the link's directory (or the root for an absolute target).
      std::vector<std::string_view> resolved;
      if (out.link_target.front() == '/') {
        if (!limits.absolute_symlinks_stay_in_root) {
          refuse(fmt::format("{}: symlink to the absolute path \"{}\" leaves the archive root",
                             where(), out.link_target));
        }
      } else {
        resolved.assign(parts.begin(), parts.end() - 1);
      }
      std::string_view rest = out.link_target;
      while (!rest.empty()) {
        const auto slash = rest.find('/');
        const std::string_view part = rest.substr(0, slash);
        rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
        if (part.empty() || part == ".") continue;
        if (part == "..") {
          if (resolved.empty()) {
            refuse(fmt::format("{}: symlink target \"{}\" leaves the archive root", where(),
                               out.link_target));
          }
          resolved.pop_back();
          continue;
        }
        resolved.push_back(part);
      }
      out.link_path = join(resolved, resolved.size());
    } else if (out.type == TarEntryType::kHardlink) {
      out.link_target = hardlink;
      if (out.link_target.empty()) refuse(where() + ": hardlink without a target");
      if (out.link_target.size() > limits.max_path_length) {
        refuse(fmt::format("{}: hardlink target longer than {} bytes", where(),
                           limits.max_path_length));
      }
      if (out.link_target.front() == '/' || !split_clean(out.link_target, target_parts)) {
        refuse(fmt::format("{}: hardlink target \"{}\" leaves the archive root", where(),
                           out.link_target));
      }
      if (target_parts.empty()) refuse(where() + ": hardlink to the archive root");
      out.link_path = join(target_parts, target_parts.size());
      // link() would follow a symlink in the target's directories.
      check_no_symlink_prefix(target_parts, "hardlink target");
    }

    if (out.type == TarEntryType::kSymlink) {
      symlinks.insert(out.path);
    } else if (!symlinks.empty()) {
      symlinks.erase(out.path);
    }

    const la_int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    out.size = size > 0 ? static_cast<std::uint64_t>(size) : 0;
    if (out.size > limits.max_entry_size) {
      refuse(fmt::format("{}: declares {} bytes, more than the limit of {}", where(), out.size,
                         limits.max_entry_size));
    }
    declared_total += out.size;
    if (declared_total > limits.max_total_size) {
      refuse(fmt::format("{}: entries declare more than {} bytes in total", where(),
                         limits.max_total_size));
    }
    out.mode = static_cast<std::uint32_t>(archive_entry_perm(e));
    out.mtime = archive_entry_mtime(e);
    return out;
  }
};

TarReader::TarReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TarReader::TarReader(TarReader&&) noexcept = default;
TarReader& TarReader::operator=(TarReader&&) noexcept = default;
TarReader::~TarReader() = default;

namespace {

std::unique_ptr<TarReader::Impl> new_impl(std::string name, TarLimits limits) {
  auto impl = std::make_unique<TarReader::Impl>();
  impl->name = std::move(name);
  impl->limits = limits;
  impl->a.reset(archive_read_new());
  if (!impl->a) throw Error(Code::kResourceExhausted, "allocating a tar reader");
  support_filters(impl->a.get());
  if (archive_read_support_format_tar(impl->a.get()) != ARCHIVE_OK) {
    throw Error(Code::kInternal, "libarchive has no tar support");
  }
  return impl;
}

}  // namespace

TarReader TarReader::open_file(const std::filesystem::path& path, TarLimits limits) {
  auto impl = new_impl(path.string(), limits);
  if (archive_read_open_filename(impl->a.get(), path.c_str(), kBlockSize) != ARCHIVE_OK) {
    impl->fail_archive("opening");
  }
  return TarReader(std::move(impl));
}

TarReader TarReader::open_memory(std::string_view data, std::string name, TarLimits limits) {
  auto impl = new_impl(std::move(name), limits);
  if (archive_read_open_memory(impl->a.get(), data.data(), data.size()) != ARCHIVE_OK) {
    impl->fail_archive("opening");
  }
  return TarReader(std::move(impl));
}

TarReader TarReader::open_source(ByteSource source, std::string name, TarLimits limits) {
  auto impl = new_impl(std::move(name), limits);
  impl->glue = std::make_unique<SourceGlue>();
  impl->glue->source = std::move(source);
  impl->glue->buffer.resize(kBlockSize);
  if (archive_read_open(impl->a.get(), impl->glue.get(), nullptr, &SourceGlue::read, nullptr) !=
      ARCHIVE_OK) {
    impl->fail_archive("opening");
  }
  return TarReader(std::move(impl));
}

std::optional<TarEntry> TarReader::next() {
  Impl& s = *impl_;
  if (s.done) return std::nullopt;
  s.in_entry = false;
  archive_entry* e = nullptr;
  const int rc = archive_read_next_header(s.a.get(), &e);
  if (s.glue) s.glue->rethrow();
  if (rc == ARCHIVE_EOF) {
    s.done = true;
    s.current.clear();
    return std::nullopt;
  }
  if (rc < ARCHIVE_WARN) {
    s.done = true;
    s.fail_archive(s.entries == 0 ? "reading the first entry" : "reading the next entry");
  }
  if (++s.entries > s.limits.max_entries) {
    s.done = true;
    refuse(fmt::format("{}: more than {} entries", s.name, s.limits.max_entries));
  }
  s.check_ratio();
  try {
    TarEntry entry = s.make_entry(e);
    s.in_entry = true;
    return entry;
  } catch (...) {
    s.done = true;
    throw;
  }
}

std::size_t TarReader::read(char* buffer, std::size_t size) {
  Impl& s = *impl_;
  if (!s.in_entry || size == 0) return 0;
  const la_ssize_t n = archive_read_data(s.a.get(), buffer, size);
  if (s.glue) s.glue->rethrow();
  if (n < 0) {
    s.done = true;
    s.in_entry = false;
    s.fail_archive("reading data");
  }
  if (n == 0) {
    s.in_entry = false;
    return 0;
  }
  s.check_ratio();
  return static_cast<std::size_t>(n);
}

std::uint64_t TarReader::entries() const {
  return impl_->entries;
}

std::uint64_t TarReader::input_bytes() const {
  return static_cast<std::uint64_t>(archive_filter_bytes(impl_->a.get(), -1));
}

const std::string& TarReader::name() const {
  return impl_->name;
}

// ---- compression -----------------------------------------------------------------------------

Compression detect_compression(std::string_view head) {
  const auto starts = [&](std::string_view magic) { return head.starts_with(magic); };
  if (starts("\x1f\x8b")) return Compression::kGzip;
  if (starts("\x28\xb5\x2f\xfd")) return Compression::kZstd;
  if (starts("BZh")) return Compression::kBzip2;
  if (starts(std::string_view("\xfd"
                              "7zXZ\x00",
                              6)))
    return Compression::kXz;
  return Compression::kNone;
}

std::string_view compression_name(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
    case Compression::kBzip2: return "bzip2";
    case Compression::kXz: return "xz";
  }
  return "unknown";
}

struct DecompressReader::Impl {
  Compression compression = Compression::kNone;
  std::string name;
  DecompressLimits limits;
  std::uint64_t out_total = 0;
  bool finished = false;

  // kNone and kGzip pull from the source directly.
  ByteSource source;
  std::vector<char> in;
  std::uint64_t in_total = 0;
  bool source_eof = false;
  z_stream zs{};
  bool zs_init = false;

  // Other formats: libarchive's "raw" format behind its filters.
  ArchivePtr a;
  std::unique_ptr<SourceGlue> glue;

  ~Impl() {
    if (zs_init) inflateEnd(&zs);
  }

  std::uint64_t input_total() const { return glue ? glue->consumed : in_total; }

  void account(std::size_t produced) {
    out_total += produced;
    if (out_total > limits.max_output) {
      refuse(fmt::format("{}: decompresses to more than {} bytes", name, limits.max_output));
    }
    if (limits.max_ratio != 0 && out_total > limits.ratio_floor &&
        out_total / limits.max_ratio > input_total()) {
      refuse(fmt::format("{}: {} data expands more than {}x: refused as a size bomb", name,
                         compression_name(compression), limits.max_ratio));
    }
  }

  bool fill() {
    if (source_eof) return false;
    const std::size_t n = source(in.data(), in.size());
    if (n == 0) {
      source_eof = true;
      return false;
    }
    in_total += n;
    zs.next_in = reinterpret_cast<Bytef*>(in.data());
    zs.avail_in = static_cast<uInt>(n);
    return true;
  }

  std::size_t read_gzip(char* buffer, std::size_t size) {
    for (;;) {
      if (finished) return 0;
      if (zs.avail_in == 0) fill();
      zs.next_out = reinterpret_cast<Bytef*>(buffer);
      zs.avail_out = static_cast<uInt>(std::min<std::size_t>(size, 1u << 30));
      const uInt before = zs.avail_out;
      const int rc = inflate(&zs, Z_NO_FLUSH);
      const std::size_t produced = before - zs.avail_out;
      if (rc == Z_STREAM_END) {
        // Another gzip member may follow (pigz, concatenated streams); zero padding is tolerated.
        for (;;) {
          if (zs.avail_in == 0 && !fill()) {
            finished = true;
            break;
          }
          if (zs.next_in[0] == 0) {
            ++zs.next_in;
            --zs.avail_in;
            continue;
          }
          if (zs.avail_in < 2 && fill_more()) continue;
          if (zs.avail_in >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
            if (inflateReset(&zs) != Z_OK) refuse(name + ": gzip: cannot reset");
            break;
          }
          refuse(name + ": gzip: trailing garbage after the compressed data");
        }
      } else if (rc == Z_BUF_ERROR) {
        if (zs.avail_in == 0 && source_eof) refuse(name + ": gzip: unexpected end of data");
      } else if (rc != Z_OK) {
        refuse(fmt::format("{}: gzip: {}", name, zs.msg != nullptr ? zs.msg : "corrupt data"));
      }
      if (produced > 0) {
        account(produced);
        return produced;
      }
    }
  }

  // Keeps the unread tail and appends more input after it (for a magic split across reads).
  bool fill_more() {
    if (source_eof) return false;
    const std::size_t keep = zs.avail_in;
    std::memmove(in.data(), zs.next_in, keep);
    const std::size_t n = source(in.data() + keep, in.size() - keep);
    if (n == 0) {
      source_eof = true;
      zs.next_in = reinterpret_cast<Bytef*>(in.data());
      return false;
    }
    in_total += n;
    zs.next_in = reinterpret_cast<Bytef*>(in.data());
    zs.avail_in = static_cast<uInt>(keep + n);
    return true;
  }

  std::size_t read_archive(char* buffer, std::size_t size) {
    if (finished) return 0;
    const la_ssize_t n = archive_read_data(a.get(), buffer, size);
    glue->rethrow();
    if (n < 0) {
      finished = true;
      const char* msg = archive_error_string(a.get());
      refuse(fmt::format("{}: {}: {}", name, compression_name(compression),
                         msg != nullptr ? msg : "corrupt data"));
    }
    if (n == 0) {
      finished = true;
      return 0;
    }
    account(static_cast<std::size_t>(n));
    return static_cast<std::size_t>(n);
  }
};

DecompressReader::DecompressReader(Compression compression, ByteSource source, std::string name,
                                   DecompressLimits limits)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.compression = compression;
  s.name = std::move(name);
  s.limits = limits;
  if (compression == Compression::kNone || compression == Compression::kGzip) {
    s.source = std::move(source);
    s.in.resize(kBlockSize);
    if (compression == Compression::kGzip) {
      if (inflateInit2(&s.zs, 16 + MAX_WBITS) != Z_OK) {
        throw Error(Code::kResourceExhausted, s.name + ": initializing gzip");
      }
      s.zs_init = true;
    }
    return;
  }
  s.a.reset(archive_read_new());
  if (!s.a) throw Error(Code::kResourceExhausted, s.name + ": allocating a decompressor");
  support_filters(s.a.get());
  archive_read_support_format_raw(s.a.get());
  s.glue = std::make_unique<SourceGlue>();
  s.glue->source = std::move(source);
  s.glue->buffer.resize(kBlockSize);
  archive_entry* e = nullptr;
  if (archive_read_open(s.a.get(), s.glue.get(), nullptr, &SourceGlue::read, nullptr) !=
          ARCHIVE_OK ||
      archive_read_next_header(s.a.get(), &e) != ARCHIVE_OK) {
    s.glue->rethrow();
    const char* msg = archive_error_string(s.a.get());
    refuse(fmt::format("{}: {}: {}", s.name, compression_name(compression),
                       msg != nullptr ? msg : "not a compressed stream"));
  }
  int want = ARCHIVE_FILTER_NONE;
  switch (compression) {
    case Compression::kZstd: want = ARCHIVE_FILTER_ZSTD; break;
    case Compression::kBzip2: want = ARCHIVE_FILTER_BZIP2; break;
    case Compression::kXz: want = ARCHIVE_FILTER_XZ; break;
    default: break;
  }
  if (archive_filter_count(s.a.get()) < 2 || archive_filter_code(s.a.get(), 0) != want) {
    refuse(fmt::format("{}: not a {} stream", s.name, compression_name(compression)));
  }
}

DecompressReader::DecompressReader(DecompressReader&&) noexcept = default;
DecompressReader& DecompressReader::operator=(DecompressReader&&) noexcept = default;
DecompressReader::~DecompressReader() = default;

std::size_t DecompressReader::read(char* buffer, std::size_t size) {
  Impl& s = *impl_;
  if (size == 0) return 0;
  switch (s.compression) {
    case Compression::kNone: {
      if (s.finished) return 0;
      const std::size_t n = s.source(buffer, size);
      if (n == 0) s.finished = true;
      s.in_total += n;
      s.out_total += n;
      if (s.out_total > s.limits.max_output) {
        refuse(fmt::format("{}: more than {} bytes", s.name, s.limits.max_output));
      }
      return n;
    }
    case Compression::kGzip: return s.read_gzip(buffer, size);
    default: return s.read_archive(buffer, size);
  }
}

std::uint64_t DecompressReader::output_bytes() const {
  return impl_->out_total;
}

}  // namespace stowage::oci
