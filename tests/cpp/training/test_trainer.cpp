// `supra train` semantics on CPU: exact resume (bitwise), preemption, schedule / z-loss / accumulation formulas,
// non-finite step skipping, disk-full during a checkpoint, and real learning on stories260K.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <sstream>

#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/model_io.h"
#include "core/formats/safetensors.h"
#include "core/supra/convert.h"
#include "data/shards.h"
#include "data/teacher_documents.h"
#include "training/checkpoint.h"
#include "training/loss.h"
#include "training/schedule.h"
#include "training/signals.h"
#include "training/trainer.h"
#include "tests/cpp/temp_dir.h"

namespace fs = std::filesystem;
using supra::training::TrainConfig;
using supra::training::Trainer;

namespace {

using supra::test::TempDir;

// A tiny converted model folder and a token data folder (random documents of mixed lengths).
void make_fixture(const fs::path& dir) {
  supra::ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  torch::manual_seed(0);
  supra::CausalLM m(c);
  {
    torch::NoGradGuard g;
    for (auto& p : m->parameters()) p.normal_(0, 0.1);
  }
  supra::convert_to_supra(m, {}, 0);
  supra::save_model_folder(m, dir / "model");
  std::vector<std::vector<int64_t>> docs;
  torch::manual_seed(1);
  for (int d = 0; d < 120; ++d) {
    const int64_t n = 5 + (d * 7) % 40;
    std::vector<int64_t> doc = {1};
    int64_t x = d % 13;
    for (int64_t i = 0; i < n; ++i) {  // learnable structure: mostly x → x+1 (mod 60)
      x = (i % 5 == 4) ? torch::randint(3, 63, {1}).item<int64_t>() : 3 + (x + 1) % 60;
      doc.push_back(x);
    }
    doc.push_back(2);
    docs.push_back(doc);
  }
  supra::data::TokenizerIdentity tok;
  tok.bos_token_id = 1;
  tok.eos_token_id = 2;
  tok.add_bos = true;
  supra::data::write_dataset(dir / "data", docs, 64, 40, tok);
}

TrainConfig base_config(const fs::path& dir, const std::string& run) {
  TrainConfig c;
  c.model_path = (dir / "model").string();
  c.data_dir = (dir / "data").string();
  c.seq_len = 16;
  c.eval_samples = 8;
  c.lr = 3e-3;
  c.min_lr = 1e-4;
  c.warmup_steps = 3;
  c.steps = 12;
  c.global_batch = 4;
  c.micro_batch = 2;
  c.out_dir = (dir / run).string();
  c.eval_batches = 2;
  c.num_threads = 1;
  c.device = supra::training::DeviceChoice::kCpu;
  return c;
}

std::map<std::string, torch::Tensor> weights_of(const fs::path& checkpoint) {
  return supra::load_safetensors_dir(checkpoint);
}

}  // namespace

TEST(Schedule, WarmupThenCosineToFloor) {
  supra::training::Schedule s{1e-3, 1e-4, 10, 110};
  EXPECT_DOUBLE_EQ(s.at(0), 1e-4);
  EXPECT_DOUBLE_EQ(s.at(9), 1e-3);
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);
  EXPECT_NEAR(s.at(60), 1e-4 + 0.5 * (1e-3 - 1e-4), 1e-15);
  EXPECT_NEAR(s.at(110), 1e-4, 1e-15);
  EXPECT_NEAR(s.at(35), 1e-4 + 0.5 * (1 + std::cos(M_PI * 25 / 100)) * 9e-4, 1e-15);
}

TEST(Loss, CrossEntropyPlusZLossFormula) {
  torch::manual_seed(0);
  auto logits = torch::randn({2, 3, 5}, torch::kDouble) * 3;
  auto targets = torch::randint(0, 5, {2, 3}, torch::kLong);
  auto parts = supra::training::lm_loss(logits, targets, 1e-2);
  double ce = 0, z = 0;
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 3; ++t) {
      double m = 0;
      for (int v = 0; v < 5; ++v) m += std::exp(logits[b][t][v].item<double>());
      const double lse = std::log(m);
      ce += lse - logits[b][t][targets[b][t].item<int64_t>()].item<double>();
      z += lse * lse;
    }
  EXPECT_NEAR(parts.ce.item<double>(), ce / 6, 1e-5);
  EXPECT_NEAR(parts.z.item<double>(), z / 6, 1e-4);
  EXPECT_NEAR(parts.total.item<double>(), ce / 6 + 1e-2 * z / 6, 1e-4);
}

TEST(Trainer, StopAndResumeIsBitwiseIdentical) {
  TempDir tmp;
  make_fixture(tmp.path());
  // Uninterrupted: 12 steps.
  std::vector<double> full;
  {
    Trainer t(base_config(tmp.path(), "full"), "");
    t.on_step = [&](int64_t, double loss) { full.push_back(loss); };
    auto r = t.run();
    EXPECT_EQ(r.final_step, 12);
  }
  // Preempted after 5 steps (SIGTERM mid-epoch), then resumed with --run.resume auto.
  std::vector<double> split;
  {
    supra::training::reset_stop_request();
    Trainer t(base_config(tmp.path(), "split"), "");
    t.on_step = [&](int64_t step, double loss) {
      split.push_back(loss);
      if (step == 5) std::raise(SIGTERM);
    };
    auto r = t.run();
    EXPECT_TRUE(r.stopped_by_signal);
    EXPECT_EQ(r.final_step, 5);
    supra::training::reset_stop_request();
  }
  {
    auto c = base_config(tmp.path(), "split");
    EXPECT_THROW(Trainer(c, "").run(), supra::Error);  // resume = none on a folder with checkpoints
    c.resume = supra::training::ResumeMode::kAuto;
    Trainer t(c, "");
    t.on_step = [&](int64_t, double loss) { split.push_back(loss); };
    EXPECT_EQ(t.run().final_step, 12);
  }
  ASSERT_EQ(split.size(), full.size());
  for (size_t i = 0; i < full.size(); ++i) EXPECT_EQ(split[i], full[i]) << "step " << i + 1;
  auto a = weights_of(tmp.path() / "full/checkpoints/step_00000012");
  auto b = weights_of(tmp.path() / "split/checkpoints/step_00000012");
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  EXPECT_GT(full.front(), full.back());  // it learns
}

TEST(Trainer, ResumeWithIncompatibleConfigIsRefused) {
  TempDir tmp;
  make_fixture(tmp.path());
  auto c = base_config(tmp.path(), "run");
  c.steps = 2;
  Trainer(c, "").run();
  c.resume = supra::training::ResumeMode::kAuto;
  c.steps = 4;
  c.global_batch = 8;
  c.micro_batch = 4;
  try {
    Trainer(c, "").run();
    FAIL();
  } catch (const supra::Error& e) {
    EXPECT_NE(std::string(e.what()).find("global_batch"), std::string::npos) << e.what();
  }
}

TEST(Trainer, GradientAccumulationEqualsFullBatch) {
  TempDir tmp;
  make_fixture(tmp.path());
  std::vector<double> la, lb;
  auto c = base_config(tmp.path(), "a");
  c.steps = 4;
  c.micro_batch = 4;
  Trainer ta(c, "");
  ta.on_step = [&](int64_t, double l) { la.push_back(l); };
  ta.run();
  c.out_dir = (tmp.path() / "b").string();
  c.micro_batch = 1;
  Trainer tb(c, "");
  tb.on_step = [&](int64_t, double l) { lb.push_back(l); };
  tb.run();
  for (size_t i = 0; i < la.size(); ++i) EXPECT_NEAR(la[i], lb[i], 1e-5 * std::abs(la[i]));
  auto a = weights_of(tmp.path() / "a/checkpoints/step_00000004");
  auto b = weights_of(tmp.path() / "b/checkpoints/step_00000004");
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::allclose(t, b.at(name), 1e-4, 1e-5)) << name;
}

TEST(Trainer, NonFiniteStepsAreSkippedThenStopTheRun) {
  TempDir tmp;
  make_fixture(tmp.path());
  auto c = base_config(tmp.path(), "nan");
  c.steps = 6;
  c.save_every = 2;
  c.max_nonfinite = 2;
  {
    // One bad step: skipped, training continues.
    Trainer t(c, "");
    t.inject_nonfinite = [](int64_t step) { return step == 3; };
    EXPECT_EQ(t.run().final_step, 6);
  }
  auto c2 = c;
  c2.out_dir = (tmp.path() / "nan2").string();
  Trainer t(c2, "");
  t.inject_nonfinite = [](int64_t step) { return step >= 3; };
  try {
    t.run();
    FAIL() << "expected the run to stop";
  } catch (const supra::Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
  }
  // The last good checkpoint is untouched and loadable.
  supra::training::CheckpointManager m(c2.out_dir, 3);
  auto latest = m.latest();
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->filename(), "step_00000002");
  auto w = weights_of(*latest);
  for (const auto& [name, t] : w) EXPECT_TRUE(torch::isfinite(t).all().item<bool>()) << name;
}

TEST(Trainer, ARunWhoseStepsWereAllSkippedIsAnError) {
  TempDir tmp;
  make_fixture(tmp.path());
  auto c = base_config(tmp.path(), "allnan");
  c.steps = 2;  // fewer than max_nonfinite: the streak alone would not stop it
  Trainer t(c, "");
  t.inject_nonfinite = [](int64_t) { return true; };
  try {
    t.run();
    FAIL() << "a run that trained nothing must not succeed";
  } catch (const supra::Error& e) {
    EXPECT_NE(std::string(e.what()).find("nothing was trained"), std::string::npos) << e.what();
  }
}

TEST(Trainer, DiskFullDuringSaveKeepsThePreviousCheckpoint) {
  TempDir tmp;
  make_fixture(tmp.path());
  auto c = base_config(tmp.path(), "full_disk");
  c.steps = 2;
  Trainer(c, "").run();
  supra::training::CheckpointManager m(c.out_dir, 3);
  auto before = m.latest();
  ASSERT_TRUE(before.has_value());
  // A model whose save must fail: cap the file size this process may write.
  auto model = supra::load_model(tmp.path() / "model");
  std::vector<supra::training::NamedParam> params;
  for (const auto& p : model->named_parameters()) params.push_back({p.key(), p.value(), true});
  supra::training::ShardedAdamW opt(
      params,
      std::make_shared<supra::training::Communicator>(supra::training::DistEnv{}, torch::kCPU, std::chrono::seconds(1)),
      {});
  supra::training::TrainState st;
  st.step = 3;
  struct rlimit old {};
  getrlimit(RLIMIT_FSIZE, &old);
  auto prev_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit tiny = old;
  tiny.rlim_cur = 4096;
  setrlimit(RLIMIT_FSIZE, &tiny);
  EXPECT_THROW(m.save(model, opt, st, ""), supra::Error);
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, prev_handler);
  EXPECT_EQ(m.latest(), before);
  EXPECT_FALSE(fs::exists(fs::path(c.out_dir) / "checkpoints/step_00000003"));
  EXPECT_NO_THROW(supra::load_model(*before));
}

TEST(Trainer, Stories260KLossFallsTowardTheTeacher) {
  const fs::path stories = fs::path(SUPRA_SHARED_DIR) / "models/stories260K/stories260K.bin";
  if (!fs::exists(stories)) GTEST_SKIP() << "stories260K not found at " << stories;
  torch::set_num_threads(1);
  TempDir tmp;
  // Training text: documents sampled from the teacher itself.
  auto teacher = supra::load_model(stories);
  supra::data::SampleOptions so;
  so.num_docs = 256;
  so.max_tokens = 64;
  so.seed = 1;
  so.eos_token_id = 2;
  auto docs = supra::data::sample_documents(teacher, so);
  supra::data::TokenizerIdentity tok;
  tok.bos_token_id = 1;
  tok.eos_token_id = 2;
  tok.add_bos = true;
  supra::data::write_dataset(tmp.path() / "data", docs, 512, 128, tok);

  TrainConfig c;
  c.model_path = stories.string();  // converted on the fly
  c.data_dir = (tmp.path() / "data").string();
  c.seq_len = 64;
  c.eval_samples = 16;
  c.lr = 3e-3;
  c.min_lr = 3e-4;
  c.warmup_steps = 5;
  c.steps = 60;
  c.global_batch = 16;
  c.micro_batch = 16;
  c.eval_batches = 1;
  c.device = supra::training::DeviceChoice::kCpu;
  c.out_dir = (tmp.path() / "run").string();
  Trainer(c, "").run();

  // Teacher CE on the same held-out rows.
  auto data = std::make_shared<supra::data::ShardedTokens>(tmp.path() / "data");
  supra::data::LoaderOptions lo;
  lo.seq_len = 64;
  lo.global_batch = 16;
  lo.eval_samples = 16;
  supra::data::TokenLoader loader(data, lo);
  auto batch = loader.eval_batch(0);
  torch::NoGradGuard g;
  auto logits = teacher->forward(batch.tokens.narrow(1, 0, 64));
  const double teacher_ce = supra::training::lm_loss(logits, batch.tokens.narrow(1, 1, 64), 0).ce.item<double>();

  std::vector<double> evals;
  std::istringstream lines(supra::read_file(tmp.path() / "run/metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("eval_loss")) evals.push_back(j["eval_loss"].get<double>());
  }
  ASSERT_GE(evals.size(), 2u);
  const double start = evals.front(), end = evals.back();
  std::cout << "stories260K held-out CE: converted step 0 " << start << ", after 60 steps " << end << ", teacher "
            << teacher_ce << "\n";
  EXPECT_GT(start, teacher_ce);
  EXPECT_LT(end, start - 0.5 * (start - teacher_ce));  // more than half of the gap closed
}
