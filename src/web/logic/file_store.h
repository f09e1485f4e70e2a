// Where uploaded files live (XEP-0363, docs/web.md). An interface, so that an object store can
// take the place of the directory later; DiskFileStore keeps each file and a small metadata
// file beside it in one directory, written under a temporary name and renamed when complete.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace waddle::web {

struct StoredFile {
  std::string slot;          // the random id in the file's URLs
  std::string owner;         // bare JID of the uploader
  std::string filename;      // the URL's last segment (safe_filename)
  std::string content_type;  // as declared in the slot request
  std::uint64_t size = 0;
  std::int64_t created = 0;  // Unix seconds
};

class FileStore {
 public:
  virtual ~FileStore() = default;

  // A file being written; destroyed without commit(), it leaves nothing behind.
  class Writer {
   public:
    virtual ~Writer() = default;
    virtual bool write(std::string_view bytes) = 0;  // false: the disk refused (full, I/O)
    virtual bool commit() = 0;                       // the file becomes readable
  };
  class Reader {
   public:
    virtual ~Reader() = default;
    // Up to `n` bytes from `offset`; 0 at the end or on an error.
    virtual std::size_t read(std::uint64_t offset, char* out, std::size_t n) = 0;
  };

  // Null when the file cannot be created.
  virtual std::unique_ptr<Writer> create(const StoredFile& file) = 0;
  // Null when there is no such file.
  virtual std::unique_ptr<Reader> open(const std::string& slot) = 0;
  virtual void remove(const std::string& slot) = 0;
  // Every complete file (at start-up: quotas and expiry are counted from it). Files left
  // incomplete by a crash are removed.
  virtual std::vector<StoredFile> list() = 0;
};

// A file opened for reading outside any store (the web client's files); null when it cannot
// be opened or is not a regular file. `size` is set on success.
std::unique_ptr<FileStore::Reader> open_file(const std::string& path, std::uint64_t& size);

class DiskFileStore : public FileStore {
 public:
  // Creates the directory (mode 0700) if needed; throws std::runtime_error when it cannot.
  explicit DiskFileStore(std::string directory);

  std::unique_ptr<Writer> create(const StoredFile& file) override;
  std::unique_ptr<Reader> open(const std::string& slot) override;
  void remove(const std::string& slot) override;
  std::vector<StoredFile> list() override;

 private:
  std::string path(const std::string& slot, std::string_view suffix) const;
  std::string dir_;
};

}  // namespace waddle::web
