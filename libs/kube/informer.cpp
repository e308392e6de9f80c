#include "kube/informer.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <utility>

#include "base/error.h"

namespace stowage::kube {

using nlohmann::json;

namespace {

const json* metadata_of(const json& object) {
  if (!object.is_object()) return nullptr;
  const auto m = object.find("metadata");
  return m != object.end() && m->is_object() ? &*m : nullptr;
}

std::string metadata_string(const json& object, const char* field) {
  if (const json* m = metadata_of(object)) {
    if (const auto v = m->find(field); v != m->end() && v->is_string()) return *v;
  }
  return {};
}

// Same object version: equal resourceVersions, or equal content when there is none.
bool same_version(const json& a, const json& b) {
  const std::string ra = metadata_string(a, "resourceVersion");
  const std::string rb = metadata_string(b, "resourceVersion");
  if (!ra.empty() || !rb.empty()) return ra == rb;
  return a == b;
}

template <typename Handler, typename... Args>
void call_handlers(const std::vector<Handler>& handlers, const char* what, const Args&... args) {
  for (const auto& h : handlers) {
    try {
      h(args...);
    } catch (const std::exception& e) {
      spdlog::error("informer {} handler threw error=\"{}\"", what, e.what());
    } catch (...) {
      spdlog::error("informer {} handler threw a non-standard exception", what);
    }
  }
}

}  // namespace

json pick_fields(const json& object, std::initializer_list<const char*> fields) {
  json out = json::object();
  if (!object.is_object()) return out;
  for (const char* field : fields) {
    if (const auto f = object.find(field); f != object.end()) out[field] = *f;
  }
  return out;
}

json strip_managed_fields(const json& object) {
  json out = object;
  if (out.is_object()) {
    if (const auto m = out.find("metadata"); m != out.end() && m->is_object()) {
      m->erase("managedFields");
    }
  }
  return out;
}

std::string object_key(const json& object) {
  const std::string name = metadata_string(object, "name");
  if (name.empty()) return {};
  const std::string ns = metadata_string(object, "namespace");
  return ns.empty() ? name : ns + "/" + name;
}

Informer::Informer(Client& client, Clock& clock, InformerOptions options)
    : clock_(clock),
      transform_(options.transform ? std::move(options.transform)
                                   : Transform(strip_managed_fields)),
      reflector_(client, clock, *this, std::move(options.reflector)) {}

Informer::~Informer() {
  stop();
}

void Informer::add_index(std::string name, IndexFunc fn) {
  if (started_) throw_internal("informer: add_index(" + name + ") after start()");
  if (!fn) throw_invalid("informer: index " + name + " has no function");
  if (!index_fns_.emplace(name, std::move(fn)).second) {
    throw_invalid("informer: index " + name + " is already defined");
  }
  std::unique_lock lock(mu_);
  index_values_[name];
}

void Informer::add_label_index(const std::string& label_key) {
  add_index("label:" + label_key, [label_key](const json& object) {
    std::vector<std::string> values;
    if (const json* m = metadata_of(object)) {
      if (const auto labels = m->find("labels"); labels != m->end() && labels->is_object()) {
        if (const auto v = labels->find(label_key); v != labels->end() && v->is_string()) {
          values.push_back(*v);
        }
      }
    }
    return values;
  });
}

void Informer::on_add(AddHandler handler) {
  if (started_) throw_internal("informer: on_add() after start()");
  add_handlers_.push_back(std::move(handler));
}

void Informer::on_update(UpdateHandler handler) {
  if (started_) throw_internal("informer: on_update() after start()");
  update_handlers_.push_back(std::move(handler));
}

void Informer::on_delete(DeleteHandler handler) {
  if (started_) throw_internal("informer: on_delete() after start()");
  delete_handlers_.push_back(std::move(handler));
}

void Informer::start() {
  started_ = true;
  reflector_.start();
}

void Informer::stop() {
  reflector_.stop();
}

bool Informer::has_synced() const {
  std::shared_lock lock(mu_);
  return synced_;
}

bool Informer::wait_until_synced(Clock::TimePoint deadline, std::stop_token stop) {
  if (has_synced()) return true;
  std::stop_source wake;
  const std::stop_callback on_synced(synced_signal_.get_token(), [&wake] { wake.request_stop(); });
  const std::stop_callback on_stop(stop, [&wake] { wake.request_stop(); });
  clock_.sleep_until(deadline, wake.get_token());
  return has_synced();
}

ObjectPtr Informer::get(std::string_view namespace_, std::string_view name) const {
  std::string key = namespace_.empty() ? std::string(name) : fmt::format("{}/{}", namespace_, name);
  std::shared_lock lock(mu_);
  const auto it = objects_.find(key);
  return it == objects_.end() ? nullptr : it->second;
}

std::vector<ObjectPtr> Informer::list() const {
  std::shared_lock lock(mu_);
  std::vector<ObjectPtr> out;
  out.reserve(objects_.size());
  for (const auto& [key, object] : objects_) out.push_back(object);
  return out;
}

std::shared_ptr<const InformerSnapshot> Informer::snapshot() const {
  std::shared_lock lock(mu_);
  std::lock_guard snapshot_lock(snapshot_mu_);
  if (!snapshot_ || snapshot_generation_ != generation_) {
    snapshot_ =
        std::make_shared<const InformerSnapshot>(InformerSnapshot{objects_, resource_version_});
    snapshot_generation_ = generation_;
  }
  return snapshot_;
}

std::vector<ObjectPtr> Informer::by_index(std::string_view index, std::string_view value) const {
  std::shared_lock lock(mu_);
  const auto idx = index_values_.find(std::string(index));
  if (idx == index_values_.end()) {
    throw_invalid(fmt::format("informer: no index named {}", index));
  }
  std::vector<ObjectPtr> out;
  if (const auto keys = idx->second.find(std::string(value)); keys != idx->second.end()) {
    for (const auto& key : keys->second) {
      if (const auto it = objects_.find(key); it != objects_.end()) out.push_back(it->second);
    }
  }
  return out;
}

json Informer::prepare(json object) {
  if (object_key(object).empty()) return object;  // replace() skips it, with a warning
  return kept_form(object);
}

ObjectPtr Informer::keep(const json& object) const {
  return std::make_shared<const json>(kept_form(object));
}

json Informer::kept_form(const json& object) const {
  json kept = transform_(object);
  if (!kept.is_object()) kept = json::object();
  // The cache needs these whatever the transform dropped.
  json& meta = kept["metadata"];
  if (!meta.is_object()) meta = json::object();
  for (const char* field : {"name", "namespace", "resourceVersion"}) {
    const std::string v = metadata_string(object, field);
    if (!v.empty() && !meta.contains(field)) meta[field] = v;
  }
  return kept;
}

void Informer::index_add(IndexValues& values, const std::string& key, const json& object) const {
  for (const auto& [name, fn] : index_fns_) {
    auto& by_value = values[name];
    for (const auto& v : fn(object)) by_value[v].insert(key);
  }
}

void Informer::index_remove(IndexValues& values, const std::string& key, const json& object) const {
  for (const auto& [name, fn] : index_fns_) {
    auto& by_value = values[name];
    for (const auto& v : fn(object)) {
      if (const auto it = by_value.find(v); it != by_value.end()) {
        it->second.erase(key);
        if (it->second.empty()) by_value.erase(it);
      }
    }
  }
}

void Informer::replace(std::vector<json> objects, const std::string& resource_version) {
  // Build the new map and its indexes aside, then swap them in whole: readers see either the
  // old state or the new one, never a half-filled cache.
  Objects fresh;
  IndexValues fresh_values;
  for (const auto& [name, fn] : index_fns_) fresh_values[name];
  for (auto& object : objects) {
    const std::string key = object_key(object);
    if (key.empty()) {
      spdlog::warn("informer skipping a listed object without metadata.name");
      continue;
    }
    auto kept = std::make_shared<const json>(std::move(object));  // prepare() transformed it
    index_add(fresh_values, key, *kept);
    fresh[key] = std::move(kept);
  }
  objects.clear();
  Objects old;
  {
    std::unique_lock lock(mu_);
    old = std::exchange(objects_, std::move(fresh));
    index_values_ = std::move(fresh_values);
    resource_version_ = resource_version;
    synced_ = true;
    ++generation_;
  }
  synced_signal_.request_stop();
  // Both maps are ordered by key: one merge pass finds what vanished, appeared or changed. This
  // thread is the only writer, so it reads objects_ without the lock.
  const Objects& fresh_objects = objects_;
  auto o = old.begin();
  auto n = fresh_objects.begin();
  while (o != old.end() || n != fresh_objects.end()) {
    if (n == fresh_objects.end() || (o != old.end() && o->first < n->first)) {
      fire_delete(*o->second);
      ++o;
    } else if (o == old.end() || n->first < o->first) {
      fire_add(*n->second);
      ++n;
    } else {
      if (!same_version(*o->second, *n->second)) fire_update(*o->second, *n->second);
      ++o;
      ++n;
    }
  }
}

void Informer::apply(json object) {
  const std::string key = object_key(object);
  if (key.empty()) {
    spdlog::warn("informer skipping a watched object without metadata.name");
    return;
  }
  ObjectPtr kept = keep(object);
  ObjectPtr old;
  {
    std::unique_lock lock(mu_);
    auto it = objects_.find(key);
    if (it != objects_.end()) {
      if (same_version(*it->second, *kept)) return;  // a repeat of what we hold
      old = it->second;
      index_remove(index_values_, key, *old);
      it->second = kept;
    } else {
      objects_.emplace(key, kept);
    }
    index_add(index_values_, key, *kept);
    resource_version_ = metadata_string(*kept, "resourceVersion");
    ++generation_;
  }
  if (old) {
    fire_update(*old, *kept);
  } else {
    fire_add(*kept);
  }
}

void Informer::remove(json object) {
  const std::string key = object_key(object);
  if (key.empty()) return;
  ObjectPtr last = keep(object);
  {
    std::unique_lock lock(mu_);
    const auto it = objects_.find(key);
    if (it == objects_.end()) return;  // not cached: nothing to announce
    index_remove(index_values_, key, *it->second);
    objects_.erase(it);
    resource_version_ = metadata_string(*last, "resourceVersion");
    ++generation_;
  }
  fire_delete(*last);
}

void Informer::fire_add(const json& object) {
  call_handlers(add_handlers_, "add", object);
}

void Informer::fire_update(const json& old, const json& now) {
  call_handlers(update_handlers_, "update", old, now);
}

void Informer::fire_delete(const json& last) {
  call_handlers(delete_handlers_, "delete", last);
}

}  // namespace stowage::kube
