#include "im/logic/caps.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <set>
#include <vector>

#include "core/base64.h"

namespace waddle::im {

namespace {

constexpr std::string_view kDiscoInfo = "http://jabber.org/protocol/disco#info";
constexpr std::string_view kData = "jabber:x:data";

struct Form {
  std::string type;
  std::vector<std::pair<std::string, std::vector<std::string>>> fields;  // var, values
};

}  // namespace

std::string caps_ver(const xml::Element& query) {
  std::vector<std::array<std::string, 4>> identities;  // category, type, lang, name
  std::vector<std::string> features;
  std::vector<Form> forms;
  for (const auto& n : query.nodes()) {
    if (!n.is_element()) continue;
    const xml::Element& e = *n.element;
    if (e.is("identity", kDiscoInfo)) {
      identities.push_back({std::string(e.attr("category")), std::string(e.attr("type")),
                            std::string(e.attr("xml:lang")), std::string(e.attr("name"))});
    } else if (e.is("feature", kDiscoInfo)) {
      features.emplace_back(e.attr("var"));
    } else if (e.is("x", kData) && e.attr("type") == "result") {
      Form form;
      bool typed = false;
      for (const auto* f : e.children("field", kData)) {
        std::vector<std::string> values;
        for (const auto* v : f->children("value", kData)) values.push_back(v->text());
        if (f->attr("var") == "FORM_TYPE") {
          if (typed || values.size() != 1) return {};
          form.type = values.front();
          typed = true;
          continue;
        }
        std::sort(values.begin(), values.end());
        form.fields.emplace_back(std::string(f->attr("var")), std::move(values));
      }
      if (!typed) continue;  // §5.4: forms without FORM_TYPE are ignored
      std::sort(form.fields.begin(), form.fields.end());
      forms.push_back(std::move(form));
    }
  }
  std::sort(identities.begin(), identities.end());
  std::sort(features.begin(), features.end());
  std::sort(forms.begin(), forms.end(), [](auto& a, auto& b) { return a.type < b.type; });
  if (std::adjacent_find(identities.begin(), identities.end()) != identities.end() ||
      std::adjacent_find(features.begin(), features.end()) != features.end() ||
      std::adjacent_find(forms.begin(), forms.end(),
                         [](auto& a, auto& b) { return a.type == b.type; }) != forms.end())
    return {};
  std::string s;
  for (const auto& i : identities) s += i[0] + '/' + i[1] + '/' + i[2] + '/' + i[3] + '<';
  for (const auto& f : features) s += f + '<';
  for (const auto& form : forms) {
    s += form.type + '<';
    for (const auto& [var, values] : form.fields) {
      s += var + '<';
      for (const auto& v : values) s += v + '<';
    }
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), md.data(), &len, EVP_sha1(), nullptr);
  return core::base64_encode(std::string_view(reinterpret_cast<const char*>(md.data()), len));
}

}  // namespace waddle::im
