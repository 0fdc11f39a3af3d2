// Tests for core/tokenizer*: small hand-made tokenizer.json files (a GPT-2 style byte-level BPE and a Llama-2 style
// BPE with ▁ normalizer, byte fallback and Strip decoder) whose expected ids were taken from the `tokenizers`
// library; TokenStreamer; BOS/EOS resolution; UTF-8 repair; and every bad-input case as a supra::Error naming the
// file or folder. The cross-checks against the Python libraries on trained tokenizers (and SentencePiece
// tokenizer.model files) are in tests/python/test_tokenizer.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/base/error.h"
#include "core/base/files.h"
#include "core/tokenizer/text.h"
#include "core/tokenizer/tokenizer.h"
#include "tests/cpp/temp_dir.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using supra::Error;
using supra::load_tokenizer;
using supra::TokenStreamer;
using Ids = std::vector<int64_t>;

namespace {

using supra::test::TempDir;

json added(int64_t id, const std::string& content, bool special = true) {
  return {{"id", id},        {"content", content},     {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", !special}, {"special", special}};
}

// GPT-2 style: the 256 byte characters (id = byte), a few merges, one special token.
json byte_level_json() {
  json vocab = json::object();
  const auto& chars = supra::tokenizer_detail::byte_to_unicode();
  for (int b = 0; b < 256; ++b) vocab[chars[b]] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {{"h", "e"},  {"Ġ", "t"}, {"Ġt", "he"}, {"l", "l"},
                                                                   {"e", "ll"}, {"Ġ", "w"}, {"o", "r"},   {"Ġw", "or"}};
  json m = json::array();
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = vocab.size();
    m.push_back({a, b});
  }
  return {{"version", "1.0"},
          {"added_tokens", {added(264, "<|eot|>")}},
          {"normalizer", nullptr},
          {"pre_tokenizer",
           {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"vocab", vocab},
            {"merges", m}}}};
}

// Llama-2 style (as HF converts a SentencePiece BPE): ▁ normalizer, no pre-tokenizer, byte fallback, Strip.
json sentencepiece_style_json() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {"▁", 3}, {"a", 4}, {"▁a", 5}};
  char name[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 6 + b;
  }
  return {{"version", "1.0"},
          {"added_tokens", {added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")}},
          {"normalizer",
           {{"type", "Sequence"},
            {"normalizers",
             {{{"type", "Prepend"}, {"prepend", "▁"}},
              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}}},
          {"pre_tokenizer", nullptr},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single",
             {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
          {"decoder",
           {{"type", "Sequence"},
            {"decoders",
             {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
              {{"type", "ByteFallback"}},
              {{"type", "Fuse"}},
              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
          {"model",
           {{"type", "BPE"},
            {"unk_token", "<unk>"},
            {"fuse_unk", true},
            {"byte_fallback", true},
            {"vocab", vocab},
            {"merges", json::array({json::array({"▁", "a"})})}}}};
}

std::vector<std::string> stream(const supra::Tokenizer& tok, const Ids& ids) {
  TokenStreamer s(tok);
  std::vector<std::string> chunks;
  for (int64_t id : ids) chunks.push_back(s.push(id));
  chunks.push_back(s.finish());
  return chunks;
}

template <class F>
void expect_error(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "expected a supra::Error";
  } catch (const Error& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Tokenizer, ByteLevelBpeMatchesTheTokenizersLibrary) {
  TempDir d;
  d.write("tokenizer.json", byte_level_json().dump());
  const auto tok = load_tokenizer(d.str());
  // Expected ids: tokenizers.Tokenizer.from_file(...).encode(s, add_special_tokens=False).ids
  EXPECT_EQ(tok->encode("the hello"), (Ids{116, 256, 32, 256, 259, 111}));
  EXPECT_EQ(tok->encode("hello world<|eot|>the"), (Ids{256, 259, 111, 263, 108, 100, 264, 116, 256}));
  EXPECT_EQ(tok->encode("Hi 😀!"), (Ids{72, 105, 32, 240, 159, 152, 128, 33}));
  EXPECT_EQ(tok->encode("the  world\n"), (Ids{116, 256, 32, 263, 108, 100, 10}));
  EXPECT_EQ(tok->encode(""), Ids{});
  EXPECT_EQ(tok->decode({256, 259, 111, 263, 108, 100, 264, 116, 256}), "hello worldthe");  // special skipped
  EXPECT_EQ(tok->decode({116, 256, 99999, -1}), "the");                                     // unknown ids skipped
  EXPECT_EQ(tok->decode({72, 240, 159}), "H\xEF\xBF\xBD");  // an incomplete character is U+FFFD
  EXPECT_EQ(tok->vocab_size(), 265);
  EXPECT_EQ(tok->name(), "tokenizer.json:" + d.str() + "/tokenizer.json");
  EXPECT_EQ(tok->bos_id(), std::nullopt);
  for (const std::string s : {"Hi 😀!", "the  world\n", "  x\t\ty  \n\n", "café 東京"})
    EXPECT_EQ(tok->decode(tok->encode(s)), s);
  // Invalid UTF-8 input is repaired (U+FFFD) first, as Python's decode(errors="replace") would.
  EXPECT_EQ(tok->encode("a\xFF"), tok->encode("a\xEF\xBF\xBD"));
}

TEST(Tokenizer, AddedTokenIdsAreNumberedAsTheLibraryDoes) {
  TempDir d;
  json j = byte_level_json();
  j["added_tokens"][0]["id"] = 300;  // inconsistent: the library numbers it after the vocabulary (264) anyway
  d.write("tokenizer.json", j.dump());
  EXPECT_EQ(load_tokenizer(d.str())->encode("<|eot|>"), Ids{264});
}

TEST(Tokenizer, SentencePieceStyleBpeMatchesTheTokenizersLibrary) {
  TempDir d;
  d.write("tokenizer.json", sentencepiece_style_json().dump());
  const auto tok = load_tokenizer(d.str());
  EXPECT_EQ(tok->encode("a a"), (Ids{5, 5}));
  EXPECT_EQ(tok->encode("a é"), (Ids{5, 3, 6 + 0xC3, 6 + 0xA9}));  // é by byte fallback
  EXPECT_EQ(tok->encode("<s>a"), (Ids{1, 5}));
  EXPECT_EQ(tok->encode(" a"), (Ids{3, 5}));
  EXPECT_EQ(tok->encode("b"), (Ids{3, 6 + 'b'}));
  EXPECT_EQ(tok->decode({5, 3, 6 + 0xC3, 6 + 0xA9}), "a é");
  EXPECT_EQ(tok->decode({5, 6 + 0xE4, 5}), "a\xEF\xBF\xBD a");
  EXPECT_EQ(tok->decode({3, 5}), " a");
  EXPECT_EQ(tok->decode({1, 5, 2}), "a");
  EXPECT_EQ(tok->bos_id(), 1);  // from the post-processor's template
}

TEST(Tokenizer, StreamerHoldsBackWhatTheNextIdsCanChange) {
  TempDir d;
  d.write("tokenizer.json", byte_level_json().dump());
  const auto tok = load_tokenizer(d.str());
  EXPECT_EQ(stream(*tok, {72, 105, 32, 240, 159, 152, 128, 33}),
            (std::vector<std::string>{"H", "i", " ", "", "", "", "😀", "!", ""}));
  EXPECT_EQ(stream(*tok, {72, 240, 159}), (std::vector<std::string>{"H", "", "", "\xEF\xBF\xBD"}));

  TempDir s;
  s.write("tokenizer.json", sentencepiece_style_json().dump());
  const auto sp = load_tokenizer(s.str());
  // Byte-fallback runs decode all or nothing: "a" then <0x61><0xE4> must not show "a" before the run ends.
  const Ids ids = {1, 5, 3, 6 + 'a', 6 + 0xE4, 5, 6 + 0xC3, 6 + 0xA9, 2};
  const auto chunks = stream(*sp, ids);
  std::string joined;
  for (const auto& c : chunks) joined += c;
  EXPECT_EQ(joined, sp->decode(ids));
  EXPECT_EQ(chunks[1], "a");  // the leading ▁ of the first piece is stripped, later ones are spaces
  // Random id sequences: the chunks always join to decode(ids).
  std::mt19937 rng(3);
  for (int trial = 0; trial < 300; ++trial) {
    Ids r(1 + rng() % 20);
    for (auto& id : r) id = static_cast<int64_t>(rng() % 262);
    std::string all;
    for (const auto& c : stream(*sp, r)) all += c;
    ASSERT_EQ(all, sp->decode(r)) << "trial " << trial;
    Ids b(1 + rng() % 20);
    for (auto& id : b) id = static_cast<int64_t>(rng() % 265);
    all.clear();
    for (const auto& c : stream(*tok, b)) all += c;
    ASSERT_EQ(all, tok->decode(b)) << "trial " << trial;
  }
}

TEST(Tokenizer, BosEosFromTokenizerConfigThenConfigThenTheTokenizer) {
  TempDir d;
  d.write("tokenizer.json", sentencepiece_style_json().dump());
  d.write("config.json", R"({"bos_token_id": 2, "eos_token_id": [2, 0]})");
  auto tok = load_tokenizer(d.str());
  EXPECT_EQ(tok->bos_id(), 2);  // config.json over the template
  EXPECT_EQ(tok->eos_id(), 2);  // the first of a list
  d.write("tokenizer_config.json", R"({"bos_token": {"content": "<s>", "special": true}, "eos_token": "</s>"})");
  tok = load_tokenizer(d.str());
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  d.write("tokenizer_config.json", R"({"bos_token": null})");
  EXPECT_EQ(load_tokenizer(d.str())->bos_id(), std::nullopt);  // stated as none
  d.write("tokenizer_config.json", "{oops");
  expect_error([&] { load_tokenizer(d.str()); }, {"tokenizer_config.json", "not valid JSON"});
}

TEST(Tokenizer, BadFoldersAndFilesAreErrorsNamingThem) {
  TempDir d;
  expect_error([&] { load_tokenizer(d.str() + "/missing"); }, {"missing", "not a folder"});
  expect_error([&] { load_tokenizer(d.str()); }, {"no tokenizer.json or tokenizer.model in " + d.str()});

  auto with = [&](const std::function<void(json&)>& edit, const std::vector<std::string>& needles) {
    json j = byte_level_json();
    edit(j);
    d.write("tokenizer.json", j.dump());
    std::vector<std::string> all = needles;
    all.push_back(d.str() + "/tokenizer.json");
    expect_error([&] { load_tokenizer(d.str()); }, all);
  };
  with([](json& j) { j["model"]["type"] = "WordPiece"; }, {"unsupported model type 'WordPiece'"});
  with([](json& j) { j["normalizer"] = {{"type", "NFC"}}; }, {"unsupported normalizer type 'NFC'"});
  with([](json& j) { j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}}; }, {"unsupported pre_tokenizer type"});
  with([](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, {"unsupported decoder type 'WordPiece'"});
  with([](json& j) { j["model"]["merges"].push_back({"x", "nope"}); }, {"'nope', which is not in model.vocab"});
  with([](json& j) { j["model"]["merges"] = {"h e", "h e e"}; }, {"model.merges[1]"});
  with([](json& j) { j["model"]["vocab"]["h"] = "seven"; }, {"model.vocab['h']"});
  with([](json& j) { j["model"]["dropout"] = 0.5; }, {"dropout"});
  with([](json& j) { j["added_tokens"][0].erase("content"); }, {"added_tokens[0]"});
  with(
      [](json& j) {
        j["pre_tokenizer"] = {
            {"type", "Split"}, {"pattern", {{"Regex", "[a-"}}}, {"behavior", "Isolated"}, {"invert", false}};
      },
      {"invalid regex"});
  with(
      [](json& j) {
        j["pre_tokenizer"] = {
            {"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}, {"invert", false}};
      },
      {"behavior 'Sideways'"});
  d.write("tokenizer.json", "{\"model\": ");
  expect_error([&] { load_tokenizer(d.str()); }, {d.str() + "/tokenizer.json", "not valid JSON"});
  d.write("tokenizer.json", "[]");
  expect_error([&] { load_tokenizer(d.str()); }, {d.str() + "/tokenizer.json", "top level"});
  fs::remove(d.path() / "tokenizer.json");
  d.write("tokenizer.model", "not a protobuf");
  expect_error([&] { load_tokenizer(d.str()); }, {d.str() + "/tokenizer.model", "SentencePiece"});
}

TEST(Tokenizer, Utf8RepairFollowsTheMaximalSubpartRule) {
  using supra::tokenizer_detail::utf8_lossy;
  const std::string r = "\xEF\xBF\xBD";
  // Expected: bytes.decode("utf-8", "replace") in Python (= Rust's String::from_utf8_lossy).
  EXPECT_EQ(utf8_lossy("ok"), "ok");
  EXPECT_EQ(utf8_lossy("\xE4\xBD\x41"), r + "A");            // a truncated 3-byte character is one U+FFFD
  EXPECT_EQ(utf8_lossy("\xF0\x80"), r + r);                  // F0 80 can start no character
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), r + r + r);          // surrogates are invalid
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), r + r);                  // overlong
  EXPECT_EQ(utf8_lossy("\xF4\x90\x80\x80"), r + r + r + r);  // above U+10FFFF
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), r);                  // a truncated emoji at the end
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98\x80"), "😀");
}
