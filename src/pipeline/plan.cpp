#include "slidesparse/pipeline/plan.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "slidesparse/error.hpp"
#include "slidesparse/presets.hpp"

namespace slidesparse::pipeline {

namespace fs = std::filesystem;

namespace {

struct TaskInfo {
  Task task;
  const char* name;
  const char* title;
  double default_timeout_s;
};

// One table for the names, titles and default child timeouts of the tasks.
const TaskInfo kTasks[] = {
    {Task::Prepare, "prepare", "Prepare models", 3600},
    {Task::TuneCoarse, "tune-coarse", "Coarse tuning (dense)", 3600},
    {Task::TuneFine, "tune-fine", "Fine tuning (sparse)", 3600},
    {Task::Check, "check", "Quick end-to-end check", 900},
    {Task::Prefill, "prefill", "Prefill benchmark", 3600},
    {Task::Decode, "decode", "Decode benchmark", 3600},
    {Task::KernelHigh, "kernel-high", "Kernel benchmark, high sparsity", 3600},
    {Task::KernelLow, "kernel-low", "Kernel benchmark, low sparsity", 3600},
};

const TaskInfo& info(Task task) {
  for (const TaskInfo& t : kTasks)
    if (t.task == task) return t;
  throw InvalidArgument("unknown task id");
}

// Parsing context: the file name for messages.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const toml::node& at, const std::string& what) const {
    fail_line(static_cast<int>(at.source().begin.line), what);
  }
  [[noreturn]] void fail_line(int line, const std::string& what) const {
    throw InvalidArgument(source_ + ":" + std::to_string(line) + ": " + what);
  }
  [[noreturn]] void fail_file(const std::string& what) const {
    throw InvalidArgument(source_ + ": " + what);
  }

  // Every key of `table` must be in `allowed`; names the line of the first that is not.
  void only_keys(const toml::table& table, const std::vector<std::string>& allowed,
                 const std::string& where) const {
    for (const auto& [key, node] : table) {
      const std::string k(key.str());
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        fail(node, "unknown key '" + k + "'" + where + " (expected one of: " + list + ")");
      }
    }
  }

  const toml::array& array(const toml::node& node, const std::string& key) const {
    const toml::array* a = node.as_array();
    if (!a) fail(node, "'" + key + "' must be a list, e.g. " + key + " = [...]");
    return *a;
  }

  std::string string(const toml::node& node, const std::string& what) const {
    const auto* s = node.as_string();
    if (!s) fail(node, what + " must be a string in quotes");
    return s->get();
  }

  // (value, line) for each string of a list.
  std::vector<std::pair<std::string, const toml::node*>> strings(const toml::node& node,
                                                                 const std::string& key) const {
    std::vector<std::pair<std::string, const toml::node*>> out;
    for (const toml::node& e : array(node, key))
      out.emplace_back(string(e, "each entry of '" + key + "'"), &e);
    return out;
  }

  std::vector<std::int64_t> m_list(const toml::node& node, const std::string& key) const {
    std::vector<std::int64_t> out;
    for (const toml::node& e : array(node, key)) {
      if (const auto* i = e.as_integer()) {
        const std::int64_t v = i->get();
        if (v <= 0)
          fail(e, "M must be a positive integer, got " + std::to_string(v) + " in '" + key + "'");
        if (std::find(out.begin(), out.end(), v) != out.end())
          fail(e, "M = " + std::to_string(v) + " is listed twice in '" + key + "'");
        out.push_back(v);
      } else if (const auto* s = e.as_string()) {
        fail(e, "M must be a positive integer, got the string '" + s->get() + "' in '" + key + "'");
      } else if (const auto* f = e.as_floating_point()) {
        std::ostringstream text;
        text << f->get();
        fail(e, "M must be a positive integer, got " + text.str() + " in '" + key + "'");
      } else {
        fail(e, "M must be a positive integer in '" + key + "'");
      }
    }
    return out;
  }

  std::vector<Pattern> patterns(const toml::node& node, const std::string& key) const {
    std::vector<Pattern> out;
    for (const auto& [text, at] : strings(node, key)) {
      if (text == "dense")
        fail(*at,
             "'dense' is not a pattern here: the dense baseline always runs; write 2_inf for "
             "the lifted validation mode");
      std::optional<Pattern> p;
      try {
        p = Pattern::parse(text);
      } catch (const InvalidArgument& e) {
        fail(*at, "unknown pattern '" + text + "' in '" + key + "' (" + e.what() + ")");
      }
      if (std::find(out.begin(), out.end(), *p) != out.end())
        fail(*at, "pattern " + p->zeros_name() + " is listed twice in '" + key + "'");
      out.push_back(*p);
    }
    return out;
  }

  // The GEMM names of `key` (plan_gemms.hpp): known, each once, at least one, and each
  // running at least one of the plan's dtypes.
  std::vector<std::string> gemms(const toml::node& node, const std::string& key, GemmSide side,
                                 const std::vector<Precision>& dtypes) const {
    std::vector<std::string> out;
    for (const auto& [name, at] : strings(node, key)) {
      if (!is_gemm_name(side, name)) {
        std::string list;
        for (const auto& n : gemm_names(side)) list += (list.empty() ? "" : ", ") + n;
        fail(*at, "unknown GEMM '" + name + "' in '" + key + "' (expected one of: " + list + ")");
      }
      if (std::find(out.begin(), out.end(), name) != out.end())
        fail(*at, "'" + name + "' is listed twice in '" + key + "'");
      std::string conflict;
      for (Precision d : dtypes) {
        conflict = gemm_dtype_conflict(side, name, d);
        if (conflict.empty()) break;
      }
      if (!conflict.empty())
        fail(*at,
             "'" + name + "' in '" + key + "' runs none of the plan's dtypes (" + conflict + ")");
      out.push_back(name);
    }
    if (out.empty())
      fail(node, "'" + key + "' is empty: name at least one (the default is [\"" +
                     default_gemm(side) + "\"])");
    return out;
  }

  const std::string& source() const { return source_; }

 private:
  std::string source_;
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool safe_name(const std::string& name) {
  if (name.empty() || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

PlanModel parse_model(const Reader& r, const std::string& text, const toml::node& at,
                      const std::string& base_dir) {
  const bool is_path = text.find('/') != std::string::npos || text.rfind('.', 0) == 0;
  if (!is_path) {
    const std::string name = lower(text);
    const auto& presets = known_presets();
    if (std::find(presets.begin(), presets.end(), name) == presets.end()) {
      std::string list;
      for (const auto& p : presets) list += (list.empty() ? "" : ", ") + p;
      r.fail(at, "unknown model '" + text + "': not a preset (" + list +
                     ") nor a checkpoint folder (write a path, e.g. ./models/mine)");
    }
    return {name, ""};
  }
  fs::path path(text);
  if (path.is_relative()) path = fs::path(base_dir) / path;
  path = fs::absolute(path).lexically_normal();
  std::string folder = path.string();
  while (folder.size() > 1 && folder.back() == '/') folder.pop_back();
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(folder) / "config.json", ec))
    r.fail(at, "unknown model '" + text + "': " + folder + " holds no config.json");
  const std::string name = fs::path(folder).filename().string();
  if (!safe_name(name))
    r.fail(at, "model folder name '" + name + "' must use only letters, digits, '.', '_', '-'");
  return {name, folder};
}

const std::vector<std::string> kTopKeys = {
    "name",        "tasks",          "models", "dtypes", "patterns", "sparse_backends",
    "dense_gemms", "dense_fallback", "layers", "M",      "kernel",   "timeout"};
const std::vector<std::string> kMKeys = {"tune", "check", "prefill", "decode", "kernel"};

// The M list a task runs, and its key in [M].
const char* m_key(Task task) {
  switch (task) {
    case Task::TuneCoarse:
    case Task::TuneFine:
      return "tune";
    case Task::Check:
      return "check";
    case Task::Prefill:
      return "prefill";
    case Task::Decode:
      return "decode";
    case Task::KernelHigh:
    case Task::KernelLow:
      return "kernel";
    case Task::Prepare:
      return nullptr;
  }
  return nullptr;
}

}  // namespace

const std::vector<Task>& pipeline_tasks() {
  static const std::vector<Task> tasks = [] {
    std::vector<Task> out;
    for (const TaskInfo& t : kTasks) out.push_back(t.task);
    return out;
  }();
  return tasks;
}

std::string task_name(Task task) { return info(task).name; }
std::string task_title(Task task) { return info(task).title; }

Task parse_task(const std::string& name) {
  for (const TaskInfo& t : kTasks)
    if (name == t.name) return t.task;
  std::string list;
  for (const TaskInfo& t : kTasks) list += std::string(list.empty() ? "" : ", ") + t.name;
  throw InvalidArgument("unknown task '" + name + "' (expected one of: " + list + ")");
}

bool Plan::has(Task task) const {
  return std::find(tasks.begin(), tasks.end(), task) != tasks.end();
}

double Plan::timeout_for(Task task) const {
  const auto it = timeout_s.find(task);
  return it != timeout_s.end() ? it->second : info(task).default_timeout_s;
}

bool Plan::measures_cutlass(Precision dtype) const {
  for (const std::string& b : sparse_backends)
    if (gemm_uses_cutlass(GemmSide::Sparse, b, dtype)) return true;
  for (const std::string& g : dense_gemms)
    if (gemm_uses_cutlass(GemmSide::Dense, g, dtype)) return true;
  return false;
}

const std::vector<std::string>& known_presets() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const ModelPreset& p : model_presets()) out.push_back(p.name);
    return out;
  }();
  return names;
}

Plan parse_plan(const std::string& text, const std::string& source, const std::string& base_dir) {
  const Reader r(source);
  toml::table root;
  try {
    root = toml::parse(std::string_view(text), std::string_view(source));
  } catch (const toml::parse_error& e) {
    r.fail_line(static_cast<int>(e.source().begin.line),
                "not valid TOML: " + std::string(e.description()));
  }
  r.only_keys(root, kTopKeys, "");

  Plan plan;
  plan.source = source;
  plan.name = fs::path(source).stem().string();
  if (const toml::node* n = root.get("name")) {
    plan.name = r.string(*n, "'name'");
    if (!safe_name(plan.name)) r.fail(*n, "'name' must use only letters, digits, '.', '_', '-'");
  }

  const toml::node* tasks = root.get("tasks");
  if (!tasks) r.fail_file("missing 'tasks' (e.g. tasks = [\"prepare\", \"prefill\"])");
  std::map<Task, const toml::node*> task_at;
  for (const auto& [name, at] : r.strings(*tasks, "tasks")) {
    Task task{};
    try {
      task = parse_task(name);
    } catch (const InvalidArgument& e) {
      r.fail(*at, e.what());
    }
    if (task_at.count(task)) r.fail(*at, "task '" + name + "' is listed twice");
    task_at[task] = at;
  }
  if (task_at.empty()) r.fail(*tasks, "'tasks' is empty: name at least one task");
  for (Task t : pipeline_tasks())
    if (task_at.count(t)) plan.tasks.push_back(t);

  const toml::node* models = root.get("models");
  if (!models)
    r.fail_file("missing 'models' (presets such as \"llama3.2-1b\", or checkpoint folders)");
  for (const auto& [text, at] : r.strings(*models, "models")) {
    PlanModel model = parse_model(r, text, *at, base_dir);
    for (const PlanModel& m : plan.models)
      if (m.name == model.name) r.fail(*at, "model '" + model.name + "' is listed twice");
    plan.models.push_back(model);
  }
  if (plan.models.empty()) r.fail(*models, "'models' is empty");

  const toml::node* dtypes = root.get("dtypes");
  if (!dtypes) r.fail_file("missing 'dtypes' (e.g. dtypes = [\"int8\", \"fp8\"])");
  for (const auto& [text, at] : r.strings(*dtypes, "dtypes")) {
    const std::string d = lower(text);
    if (d != "int8" && d != "fp8" && d != "bf16")
      r.fail(*at, "unknown dtype '" + text + "' (expected int8, fp8 or bf16)");
    const Precision p = parse_precision(d);
    if (std::find(plan.dtypes.begin(), plan.dtypes.end(), p) != plan.dtypes.end())
      r.fail(*at, "dtype '" + text + "' is listed twice");
    plan.dtypes.push_back(p);
  }
  if (plan.dtypes.empty()) r.fail(*dtypes, "'dtypes' is empty");

  if (const toml::node* n = root.get("patterns")) {
    plan.patterns = r.patterns(*n, "patterns");
  } else {
    for (Task t : {Task::Prepare, Task::TuneFine, Task::Check, Task::Prefill, Task::Decode})
      if (task_at.count(t))
        r.fail(*task_at[t],
               "task '" + task_name(t) +
                   "' needs 'patterns' (e.g. patterns = [\"2_4\", \"2_8\"]; [] for dense only)");
  }

  if (const toml::node* n = root.get("sparse_backends"))
    plan.sparse_backends = r.gemms(*n, "sparse_backends", GemmSide::Sparse, plan.dtypes);
  if (const toml::node* n = root.get("dense_gemms"))
    plan.dense_gemms = r.gemms(*n, "dense_gemms", GemmSide::Dense, plan.dtypes);
  if (const toml::node* n = root.get("dense_fallback")) {
    const auto* b = n->as_boolean();
    if (!b)
      r.fail(*n,
             "'dense_fallback' must be true or false (true: every sparse end-to-end case also "
             "runs with --dense-fallback)");
    plan.dense_fallback = b->get();
  }

  if (const toml::node* n = root.get("layers")) {
    const auto* i = n->as_integer();
    if (!i || i->get() < 1)
      r.fail(*n, "'layers' must be a positive integer (decoder layers of the made models)");
    plan.layers = i->get();
  }

  plan.kernel_high = {Pattern::parse("2_4"), Pattern::parse("2_6"), Pattern::parse("2_8"),
                      Pattern::parse("2_10")};
  plan.kernel_low = {Pattern::parse("2_12"), Pattern::parse("2_14"), Pattern::parse("2_16"),
                     Pattern::infinite()};
  if (const toml::node* n = root.get("kernel")) {
    const toml::table* t = n->as_table();
    if (!t) r.fail(*n, "'kernel' must be a table: [kernel] high = [...] low = [...]");
    r.only_keys(*t, {"high", "low"}, " in [kernel]");
    if (const toml::node* h = t->get("high")) plan.kernel_high = r.patterns(*h, "kernel.high");
    if (const toml::node* l = t->get("low")) plan.kernel_low = r.patterns(*l, "kernel.low");
  }

  const toml::table* m_table = nullptr;
  if (const toml::node* n = root.get("M")) {
    m_table = n->as_table();
    if (!m_table) r.fail(*n, "'M' must be a table: [M] prefill = [...] ...");
    r.only_keys(*m_table, kMKeys, " in [M]");
    const std::pair<const char*, std::vector<std::int64_t>*> lists[] = {
        {"tune", &plan.m.tune},
        {"check", &plan.m.check},
        {"prefill", &plan.m.prefill},
        {"decode", &plan.m.decode},
        {"kernel", &plan.m.kernel}};
    for (const auto& [key, list] : lists)
      if (const toml::node* l = m_table->get(key)) *list = r.m_list(*l, std::string("M.") + key);
  }
  for (const auto& [task, at] : task_at) {
    const char* key = m_key(task);
    if (!key) continue;
    const bool present = m_table && m_table->get(key);
    if (!present || (m_table->get(key)->as_array() && m_table->get(key)->as_array()->empty()))
      r.fail(*at, "task '" + task_name(task) + "' needs an M list: [M] " + key + " = [...]");
  }

  if (const toml::node* n = root.get("timeout")) {
    const toml::table* t = n->as_table();
    if (!t) r.fail(*n, "'timeout' must be a table: [timeout] prefill = 3600 (seconds per child)");
    std::vector<std::string> names;
    for (Task task : pipeline_tasks()) names.push_back(task_name(task));
    r.only_keys(*t, names, " in [timeout]");
    for (const auto& [key, value] : *t) {
      const std::optional<double> seconds = value.value<double>();
      if (!seconds || !(*seconds > 0))
        r.fail(value,
               "timeout '" + std::string(key.str()) + "' must be a positive number of seconds");
      plan.timeout_s[parse_task(std::string(key.str()))] = *seconds;
    }
  }
  return plan;
}

Plan load_plan(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot read plan " + path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  const std::string base = fs::absolute(fs::path(path)).parent_path().string();
  return parse_plan(text.str(), path, base);
}

nlohmann::ordered_json plan_to_json(const Plan& plan) {
  nlohmann::ordered_json j;
  j["name"] = plan.name;
  for (Task t : plan.tasks) j["tasks"].push_back(task_name(t));
  for (const PlanModel& m : plan.models)
    j["models"].push_back(
        m.is_preset() ? nlohmann::ordered_json(m.name)
                      : nlohmann::ordered_json{{"name", m.name}, {"checkpoint", m.checkpoint}});
  for (Precision p : plan.dtypes) j["dtypes"].push_back(precision_name(p));
  j["patterns"] = nlohmann::ordered_json::array();
  for (const Pattern& p : plan.patterns) j["patterns"].push_back(p.zeros_name());
  j["sparse_backends"] = plan.sparse_backends;
  j["dense_gemms"] = plan.dense_gemms;
  j["dense_fallback"] = plan.dense_fallback;
  for (const Pattern& p : plan.kernel_high) j["kernel"]["high"].push_back(p.zeros_name());
  for (const Pattern& p : plan.kernel_low) j["kernel"]["low"].push_back(p.zeros_name());
  j["layers"] = plan.layers;
  j["M"] = {{"tune", plan.m.tune},
            {"check", plan.m.check},
            {"prefill", plan.m.prefill},
            {"decode", plan.m.decode},
            {"kernel", plan.m.kernel}};
  return j;
}

std::string plan_digest(const Plan& plan) {
  nlohmann::ordered_json j = plan_to_json(plan);
  // Plans from before the GEMM keys were hashed without them: a results folder of such a plan
  // must still resume, and at their defaults these keys change no job.
  if (plan.sparse_backends == std::vector<std::string>{default_gemm(GemmSide::Sparse)})
    j.erase("sparse_backends");
  if (plan.dense_gemms == std::vector<std::string>{default_gemm(GemmSide::Dense)})
    j.erase("dense_gemms");
  if (!plan.dense_fallback) j.erase("dense_fallback");
  // FNV-1a 64: stable across runs and builds, unlike std::hash.
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : j.dump()) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  char buffer[17];
  std::snprintf(buffer, sizeof buffer, "%016llx", static_cast<unsigned long long>(h));
  return buffer;
}

}  // namespace slidesparse::pipeline
