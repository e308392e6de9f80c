// A watched cache of one collection: its Reflector is the only writer, any thread reads. Objects
// are kept after a caller-supplied transform (default: without metadata.managedFields), looked up
// by key or through indexes, and changes are announced to handlers. A relist builds a new map and
// swaps it whole, announcing deletes for vanished objects and updates for changed ones.
//   Informer cms(client, clock, {.reflector = {.collection = {{"", "v1", "configmaps"}, "ns"}}});
//   cms.add_label_index("app"); cms.on_add([&](const json& o) { queue.add(key_of(o)); });
//   cms.start(); cms.wait_until_synced(clock.now() + 30s); auto cm = cms.get("ns", "settings");
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <shared_mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "kube/client.h"
#include "kube/reflector.h"

namespace stowage::kube {

using ObjectPtr = std::shared_ptr<const nlohmann::json>;
// What is kept of an object. Must keep metadata.name, .namespace and .resourceVersion (they are
// restored if it drops them). Runs on the reflector thread.
using Transform = std::function<nlohmann::json(const nlohmann::json&)>;
// The values under which an object is indexed (none, one or several). Runs on the reflector
// thread on the transformed object; must be pure.
using IndexFunc = std::function<std::vector<std::string>(const nlohmann::json&)>;

// The default Transform: the object without metadata.managedFields.
nlohmann::json strip_managed_fields(const nlohmann::json& object);

// For transforms: the members of `object` named in `fields` that it has, as a new object (empty
// when `object` is not an object).
nlohmann::json pick_fields(const nlohmann::json& object, std::initializer_list<const char*> fields);

// "namespace/name", or "name" for a cluster-scoped object; "" when it has no metadata.name.
std::string object_key(const nlohmann::json& object);

struct InformerOptions {
  ReflectorOptions reflector{};
  Transform transform = strip_managed_fields;
};

// An immutable view of the whole cache, shareable between threads.
struct InformerSnapshot {
  std::map<std::string, ObjectPtr> objects;  // by object_key()
  std::string resource_version;              // of the last list or object event stored
};

class Informer final : private ReflectorStore {
 public:
  using AddHandler = std::function<void(const nlohmann::json& object)>;
  using UpdateHandler = std::function<void(const nlohmann::json& old, const nlohmann::json& now)>;
  using DeleteHandler = std::function<void(const nlohmann::json& last)>;

  // `client` and `clock` are borrowed and must outlive the informer.
  Informer(Client& client, Clock& clock, InformerOptions options);
  // Calls stop().
  ~Informer() override;
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Registration: before start() only (throws Internal after). Index names are unique.
  void add_index(std::string name, IndexFunc fn);
  // An index named "label:<key>" by the value of that label.
  void add_label_index(const std::string& label_key);
  // Handlers run on the reflector thread, after the cache shows the change, one at a time and in
  // event order; they must be quick (enqueue a key) and must not throw (exceptions are logged).
  // An ADDED event for a cached object is an update; an event repeating the cached
  // resourceVersion is dropped; a delete of an object not cached is dropped.
  void on_add(AddHandler handler);
  void on_update(UpdateHandler handler);
  void on_delete(DeleteHandler handler);

  void start();
  // Stops the reflector and joins its thread; the cache stays readable. Idempotent.
  void stop();

  // True once the first LIST has been stored. Thread-safe, as are all readers below.
  bool has_synced() const;
  // Waits (on the injected clock) until synced, `deadline` or `stop`; returns has_synced().
  bool wait_until_synced(Clock::TimePoint deadline, std::stop_token stop = {});

  // The cached object, or null.
  ObjectPtr get(std::string_view namespace_, std::string_view name) const;
  // Every cached object, ordered by key.
  std::vector<ObjectPtr> list() const;
  std::shared_ptr<const InformerSnapshot> snapshot() const;
  // Objects whose index `index` holds `value`, ordered by key. Throws InvalidArgument for an
  // unknown index.
  std::vector<ObjectPtr> by_index(std::string_view index, std::string_view value) const;

  // For stats, pause()/resume() (tests) and logs.
  Reflector& reflector() { return reflector_; }

 private:
  using Objects = std::map<std::string, ObjectPtr>;
  // index name → value → keys
  using IndexValues = std::map<std::string, std::unordered_map<std::string, std::set<std::string>>>;

  // Listed objects are transformed page by page (prepare), so replace() only stores them.
  nlohmann::json prepare(nlohmann::json object) override;
  void replace(std::vector<nlohmann::json> objects, const std::string& resource_version) override;
  void apply(nlohmann::json object) override;
  void remove(nlohmann::json object) override;

  // `object` after the transform, with name, namespace and resourceVersion kept.
  nlohmann::json kept_form(const nlohmann::json& object) const;
  ObjectPtr keep(const nlohmann::json& object) const;
  void index_add(IndexValues& values, const std::string& key, const nlohmann::json& object) const;
  void index_remove(IndexValues& values, const std::string& key,
                    const nlohmann::json& object) const;
  void fire_add(const nlohmann::json& object);
  void fire_update(const nlohmann::json& old, const nlohmann::json& now);
  void fire_delete(const nlohmann::json& last);

  Clock& clock_;
  const Transform transform_;
  // Fixed once started; read without the lock.
  std::map<std::string, IndexFunc> index_fns_;
  std::vector<AddHandler> add_handlers_;
  std::vector<UpdateHandler> update_handlers_;
  std::vector<DeleteHandler> delete_handlers_;
  bool started_ = false;

  // guards objects_, index_values_, resource_version_, synced_, generation_
  mutable std::shared_mutex mu_;
  Objects objects_;
  IndexValues index_values_;
  std::string resource_version_;
  bool synced_ = false;
  std::uint64_t generation_ = 0;  // bumped by every write
  // guards snapshot_, snapshot_generation_: the last snapshot built. Taken after mu_.
  mutable std::mutex snapshot_mu_;
  mutable std::shared_ptr<const InformerSnapshot> snapshot_;
  mutable std::uint64_t snapshot_generation_ = 0;
  std::stop_source synced_signal_;  // stopped once synced: wakes wait_until_synced

  Reflector reflector_;  // last: its thread stops before the rest goes away
};

}  // namespace stowage::kube
