#include "slidesparse/pipeline/status.hpp"

#include "files.hpp"
#include "slidesparse/error.hpp"

namespace slidesparse::pipeline {

namespace {

using json = nlohmann::ordered_json;

json cell_to_json(const CellRecord& c) {
  json j = {{"pattern", c.pattern}, {"M", c.m}, {"status", c.status}};
  if (!c.error_class.empty()) j["error_class"] = c.error_class;
  if (!c.message.empty()) j["message"] = c.message;
  return j;
}

CellRecord cell_from_json(const json& j) {
  CellRecord c;
  c.pattern = j.at("pattern").get<std::string>();
  c.m = j.at("M").get<std::int64_t>();
  c.status = j.at("status").get<std::string>();
  c.error_class = j.value("error_class", "");
  c.message = j.value("message", "");
  return c;
}

json job_to_json(const JobRecord& r) {
  json j;
  j["id"] = r.id;
  j["task"] = r.task;
  j["kind"] = r.kind;
  j["model"] = r.model;
  if (!r.dtype.empty()) j["dtype"] = r.dtype;
  if (!r.backend.empty()) j["backend"] = r.backend;
  j["status"] = r.status;
  if (!r.error_class.empty()) j["error_class"] = r.error_class;
  if (!r.message.empty()) j["message"] = r.message;
  if (r.skipped_by_child) j["skipped_by_child"] = true;
  j["seconds"] = r.seconds;
  j["attempts"] = r.attempts;
  j["run"] = r.run;
  j["argv"] = r.argv;
  if (!r.out_dir.empty()) j["out_dir"] = r.out_dir;
  if (!r.result_file.empty()) j["result_file"] = r.result_file;
  if (!r.log.empty()) {
    j["log"] = r.log;
    j["log_line"] = r.log_line;
  }
  if (!r.earlier_outputs.empty()) j["earlier_outputs"] = r.earlier_outputs;
  j["cells"] = json::array();
  for (const CellRecord& c : r.cells) j["cells"].push_back(cell_to_json(c));
  if (!r.parts.empty())
    for (const JobRecord& p : r.parts) j["parts"].push_back(job_to_json(p));
  return j;
}

JobRecord job_from_json(const json& j) {
  JobRecord r;
  r.id = j.at("id").get<std::string>();
  r.task = j.at("task").get<std::string>();
  r.kind = j.at("kind").get<std::string>();
  r.model = j.at("model").get<std::string>();
  r.dtype = j.value("dtype", "");
  r.backend = j.value("backend", "");
  r.status = j.at("status").get<std::string>();
  r.error_class = j.value("error_class", "");
  r.message = j.value("message", "");
  r.skipped_by_child = j.value("skipped_by_child", false);
  r.seconds = j.value("seconds", 0.0);
  r.attempts = j.value("attempts", 0);
  r.run = j.value("run", 0);
  r.argv = j.value("argv", std::vector<std::string>{});
  r.out_dir = j.value("out_dir", "");
  r.result_file = j.value("result_file", "");
  r.log = j.value("log", "");
  r.log_line = j.value("log_line", std::int64_t{0});
  r.earlier_outputs = j.value("earlier_outputs", std::vector<std::string>{});
  for (const json& c : j.at("cells")) r.cells.push_back(cell_from_json(c));
  if (j.contains("parts"))
    for (const json& p : j["parts"]) r.parts.push_back(job_from_json(p));
  return r;
}

}  // namespace

JobRecord* PipelineStatus::find(const std::string& id) {
  for (JobRecord& r : jobs)
    if (r.id == id) return &r;
  return nullptr;
}

const JobRecord* PipelineStatus::find(const std::string& id) const {
  for (const JobRecord& r : jobs)
    if (r.id == id) return &r;
  return nullptr;
}

json PipelineStatus::to_json() const {
  json j;
  j["format"] = kFormat;
  j["plan"] = {
      {"name", plan_name}, {"source", plan_source}, {"digest", plan_digest}, {"content", plan}};
  j["executable"] = executable;
  j["hardware"] = hardware_to_json(hardware);
  j["runs"] = json::array();
  for (const RunRecord& r : runs)
    j["runs"].push_back({{"started", r.started},
                         {"finished", r.finished},
                         {"resumed", r.resumed},
                         {"interrupted", r.interrupted},
                         {"log", r.log},
                         {"seconds", r.seconds},
                         {"child_seconds", r.child_seconds}});
  j["jobs"] = json::array();
  for (const JobRecord& r : jobs) j["jobs"].push_back(job_to_json(r));
  return j;
}

PipelineStatus PipelineStatus::from_json(const json& j, const std::string& path) {
  if (j.value("format", "") != kFormat)
    throw FormatError(path + ": not a pipeline status file (format '" + j.value("format", "") +
                      "', expected '" + kFormat + "')");
  try {
    PipelineStatus s;
    const json& plan = j.at("plan");
    s.plan_name = plan.at("name").get<std::string>();
    s.plan_source = plan.at("source").get<std::string>();
    s.plan_digest = plan.at("digest").get<std::string>();
    s.plan = plan.at("content");
    s.executable = j.value("executable", "");
    s.hardware = hardware_from_json(j.at("hardware"));
    for (const json& r : j.at("runs"))
      s.runs.push_back({r.at("started").get<std::string>(), r.value("finished", ""),
                        r.value("resumed", false), r.value("interrupted", false),
                        r.value("log", ""), r.value("seconds", 0.0),
                        r.value("child_seconds", 0.0)});
    for (const json& r : j.at("jobs")) s.jobs.push_back(job_from_json(r));
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": malformed pipeline status: " + e.what());
  }
}

PipelineStatus PipelineStatus::load(const std::string& path) {
  const std::string text = read_file(path);
  json j;
  try {
    j = json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError(path + ": not valid JSON: " + e.what());
  }
  return from_json(j, path);
}

void PipelineStatus::save(const std::string& path) const {
  write_file_atomic(path, to_json().dump(1) + "\n");
}

}  // namespace slidesparse::pipeline
