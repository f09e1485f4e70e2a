// Files of the upload service in one directory: <slot>.data and <slot>.meta, each written as
// <name>.part and renamed once complete (the metadata first, then the data).
#include "web/logic/file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace waddle::web {

namespace fs = std::filesystem;

namespace {

// Slots are ours (random hex); anything else in the directory is not looked at.
bool valid_slot(std::string_view slot) {
  if (slot.empty() || slot.size() > 64) return false;
  for (char c : slot)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

std::string meta_text(const StoredFile& f) {
  // One field per line; the file name cannot hold a line break (safe_filename).
  return f.owner + "\n" + f.filename + "\n" + f.content_type + "\n" + std::to_string(f.size) +
         "\n" + std::to_string(f.created) + "\n";
}

std::optional<StoredFile> parse_meta(const std::string& slot, const std::string& text) {
  std::istringstream in(text);
  StoredFile f;
  f.slot = slot;
  std::string size, created;
  if (!std::getline(in, f.owner) || !std::getline(in, f.filename) ||
      !std::getline(in, f.content_type) || !std::getline(in, size) || !std::getline(in, created))
    return std::nullopt;
  auto [e1, c1] = std::from_chars(size.data(), size.data() + size.size(), f.size);
  auto [e2, c2] = std::from_chars(created.data(), created.data() + created.size(), f.created);
  if (c1 != std::errc() || c2 != std::errc()) return std::nullopt;
  return f;
}

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

class DiskWriter : public FileStore::Writer {
 public:
  DiskWriter(int fd, std::string part, std::string data, std::string meta, std::string meta_bytes)
      : fd_(fd),
        part_(std::move(part)),
        data_(std::move(data)),
        meta_(std::move(meta)),
        meta_bytes_(std::move(meta_bytes)) {}
  ~DiskWriter() override {
    if (!committed_) ::unlink(part_.c_str());
  }

  bool write(std::string_view bytes) override {
    while (!bytes.empty()) {
      const ssize_t n = ::write(fd_.get(), bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  bool commit() override {
    if (::close(fd_.release()) != 0) return false;
    const std::string meta_part = meta_ + ".part";
    {
      std::ofstream out(meta_part, std::ios::binary | std::ios::trunc);
      out << meta_bytes_;
      if (!out.flush()) {
        ::unlink(meta_part.c_str());
        return false;
      }
    }
    if (::rename(meta_part.c_str(), meta_.c_str()) != 0 ||
        ::rename(part_.c_str(), data_.c_str()) != 0) {
      ::unlink(meta_part.c_str());
      ::unlink(meta_.c_str());
      return false;
    }
    committed_ = true;
    return true;
  }

 private:
  FdCloser fd_;
  std::string part_, data_, meta_, meta_bytes_;
  bool committed_ = false;
};

class DiskReader : public FileStore::Reader {
 public:
  explicit DiskReader(int fd) : fd_(fd) {}
  std::size_t read(std::uint64_t offset, char* out, std::size_t n) override {
    for (;;) {
      const ssize_t r = ::pread(fd_.get(), out, n, static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      return r < 0 ? 0 : static_cast<std::size_t>(r);
    }
  }

 private:
  FdCloser fd_;
};

}  // namespace

std::unique_ptr<FileStore::Reader> open_file(const std::string& path, std::uint64_t& size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return nullptr;
  }
  size = static_cast<std::uint64_t>(st.st_size);
  return std::make_unique<DiskReader>(fd);
}

DiskFileStore::DiskFileStore(std::string directory) : dir_(std::move(directory)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw std::runtime_error("cannot create upload directory " + dir_ + ": " + ec.message());
  fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (::access(dir_.c_str(), W_OK) != 0)
    throw std::runtime_error("upload directory " + dir_ +
                             " is not writable: " + std::strerror(errno));
}

std::string DiskFileStore::path(const std::string& slot, std::string_view suffix) const {
  return (fs::path(dir_) / (slot + std::string(suffix))).string();
}

std::unique_ptr<FileStore::Writer> DiskFileStore::create(const StoredFile& file) {
  if (!valid_slot(file.slot)) return nullptr;
  const std::string part = path(file.slot, ".data.part");
  const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return nullptr;
  return std::make_unique<DiskWriter>(fd, part, path(file.slot, ".data"), path(file.slot, ".meta"),
                                      meta_text(file));
}

std::unique_ptr<FileStore::Reader> DiskFileStore::open(const std::string& slot) {
  if (!valid_slot(slot)) return nullptr;
  const int fd = ::open(path(slot, ".data").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  return std::make_unique<DiskReader>(fd);
}

void DiskFileStore::remove(const std::string& slot) {
  if (!valid_slot(slot)) return;
  ::unlink(path(slot, ".data").c_str());
  ::unlink(path(slot, ".meta").c_str());
}

std::vector<StoredFile> DiskFileStore::list() {
  std::vector<StoredFile> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(".part")) {  // left by a crash or a restart mid-upload
      fs::remove(entry.path(), ec);
      continue;
    }
    if (!name.ends_with(".meta")) continue;
    const std::string slot = name.substr(0, name.size() - 5);
    if (!valid_slot(slot)) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    auto file = parse_meta(slot, text.str());
    struct stat st {};
    if (!file || ::stat(path(slot, ".data").c_str(), &st) != 0 ||
        static_cast<std::uint64_t>(st.st_size) != file->size) {
      remove(slot);  // half of a pair: no file to serve
      continue;
    }
    out.push_back(std::move(*file));
  }
  return out;
}

}  // namespace waddle::web
