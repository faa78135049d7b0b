#include "store/store_json.h"

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace automan {

namespace json = boost::json;

namespace {

json::string_view Sv(std::string_view s) { return json::string_view(s.data(), s.size()); }
std::string Str(const json::string& s) { return std::string(s.data(), s.size()); }

Result<json::object> ParseObject(std::string_view text, std::string_view what) {
  json::parse_options opts;
  opts.allow_invalid_utf8 = true;  // values are byte strings (see the header)
  boost::system::error_code ec;
  json::value v = json::parse(Sv(text), ec, json::storage_ptr(), opts);
  if (ec) {
    return Error(ErrorCode::kDataLoss, "stored {} are not valid JSON: {}", what, ec.message());
  }
  json::object* obj = v.if_object();
  if (obj == nullptr) {
    return Error(ErrorCode::kDataLoss, "stored {} are not a JSON object", what);
  }
  return std::move(*obj);
}

json::object EncodeMap(const std::map<std::string, std::string>& values) {
  json::object obj;
  for (const auto& [k, v] : values) obj.emplace(Sv(k), Sv(v));
  return obj;
}

Result<std::map<std::string, std::string>> DecodeMap(const json::object& obj,
                                                     std::string_view what) {
  std::map<std::string, std::string> out;
  for (const auto& kv : obj) {
    const json::string* s = kv.value().if_string();
    if (s == nullptr) {
      return Error(ErrorCode::kDataLoss, "stored {}: value of \"{}\" is not a string", what,
                   std::string_view(kv.key().data(), kv.key().size()));
    }
    out.emplace(std::string(kv.key().data(), kv.key().size()), Str(*s));
  }
  return out;
}

}  // namespace

std::string EncodeRunParams(const RunParams& params) {
  json::object obj;
  for (const auto& [name, value] : params) {
    json::object entry;
    entry.emplace("type", Sv(value.type));
    entry.emplace("text", value.secret() ? json::string_view() : Sv(value.text));
    if (value.secret() && !value.sealed.empty()) entry.emplace("sealed", Sv(value.sealed));
    obj.emplace(Sv(name), std::move(entry));
  }
  return json::serialize(obj);
}

Result<RunParams> DecodeRunParams(std::string_view text) {
  AUTOMAN_ASSIGN_OR_RETURN(json::object obj, ParseObject(text, "run parameters"));
  RunParams out;
  for (const auto& kv : obj) {
    std::string name(kv.key().data(), kv.key().size());
    const json::object* entry = kv.value().if_object();
    const json::string* type = nullptr;
    const json::string* value = nullptr;
    const json::string* sealed = nullptr;
    if (entry != nullptr) {
      if (const json::value* t = entry->if_contains("type")) type = t->if_string();
      if (const json::value* v = entry->if_contains("text")) value = v->if_string();
      if (const json::value* v = entry->if_contains("sealed")) sealed = v->if_string();
    }
    if (type == nullptr || value == nullptr) {
      return Error(ErrorCode::kDataLoss,
                   "stored run parameter \"{}\" is not an object with string \"type\" and "
                   "\"text\"",
                   name);
    }
    out.emplace(std::move(name),
                ParamValue{Str(*type), Str(*value), sealed ? Str(*sealed) : std::string()});
  }
  return out;
}

std::string EncodeRunOutputs(const RunOutputs& outputs) {
  json::object obj;
  for (const auto& [step, values] : outputs) obj.emplace(Sv(step), EncodeMap(values));
  return json::serialize(obj);
}

Result<RunOutputs> DecodeRunOutputs(std::string_view text) {
  AUTOMAN_ASSIGN_OR_RETURN(json::object obj, ParseObject(text, "run outputs"));
  RunOutputs out;
  for (const auto& kv : obj) {
    std::string step(kv.key().data(), kv.key().size());
    const json::object* values = kv.value().if_object();
    if (values == nullptr) {
      return Error(ErrorCode::kDataLoss, "stored outputs of step \"{}\" are not an object", step);
    }
    AUTOMAN_ASSIGN_OR_RETURN(auto map, DecodeMap(*values, "run outputs"));
    out.emplace(std::move(step), std::move(map));
  }
  return out;
}

std::string EncodeStringMap(const std::map<std::string, std::string>& values) {
  return json::serialize(EncodeMap(values));
}

Result<std::map<std::string, std::string>> DecodeStringMap(std::string_view text) {
  AUTOMAN_ASSIGN_OR_RETURN(json::object obj, ParseObject(text, "step outputs"));
  return DecodeMap(obj, "step outputs");
}

}  // namespace automan
