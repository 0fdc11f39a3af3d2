// The teacher-recovery objectives and recipes (training/objectives.h, training/stages.h): the KL against
// torch's kl_div, the distillation total, attention transfer's gradient confinement, packed-document isolation in
// the softmax teacher, frozen parameters staying bitwise unchanged, and a two-stage recipe resumed bitwise after a
// stop in its second stage; bad recipes are refused before any step.
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <sstream>

#include "../tiny_model.h"
#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/model_io.h"
#include "core/formats/safetensors.h"
#include "core/supra/convert.h"
#include "data/shards.h"
#include "tests/cpp/temp_dir.h"
#include "training/loss.h"
#include "training/objectives.h"
#include "training/signals.h"
#include "training/stages.h"
#include "training/trainer.h"

namespace fs = std::filesystem;
using namespace supra::training;

namespace {

using supra::test::TempDir;

supra::ModelConfig teacher_config() { return supra::test::tiny_config({.vocab = 64, .bos = 1, .eos = 2}); }

// <dir>/teacher (a softmax model), <dir>/converted (its SUPRA conversion) and <dir>/data (random documents).
void make_fixture(const fs::path& dir) {
  auto teacher = supra::test::random_model(teacher_config(), 0, 0.1);
  supra::save_model_folder(teacher, dir / "teacher");
  supra::convert_to_supra(teacher, {}, 0);
  supra::save_model_folder(teacher, dir / "converted");
  std::vector<std::vector<int64_t>> docs;
  for (int d = 0; d < 80; ++d) {
    std::vector<int64_t> doc = {1};
    for (int64_t i = 0; i < 5 + (d * 7) % 30; ++i) doc.push_back(3 + (d + i * (1 + d % 3)) % 60);
    doc.push_back(2);
    docs.push_back(doc);
  }
  supra::data::TokenizerIdentity tok;
  tok.bos_token_id = 1;
  tok.eos_token_id = 2;
  tok.add_bos = true;
  supra::data::write_dataset(dir / "data", docs, 64, 40, tok);
}

TrainConfig config(const fs::path& dir, const std::string& run, Objective objective) {
  TrainConfig c;
  c.model_path = (dir / "teacher").string();  // converted on the fly; also the teacher
  c.data_dir = (dir / "data").string();
  c.objective = objective;
  c.seq_len = 16;
  c.eval_samples = 8;
  c.lr = 3e-3;
  c.min_lr = 1e-4;
  c.warmup_steps = 2;
  c.steps = 6;
  c.global_batch = 4;
  c.micro_batch = 2;
  c.out_dir = (dir / run).string();
  c.eval_batches = 1;
  c.num_threads = 1;
  c.device = DeviceChoice::kCpu;
  return c;
}

}  // namespace

TEST(Objectives, KlMatchesTorchKlDiv) {
  torch::manual_seed(0);
  auto s = torch::randn({2, 3, 11}, torch::kDouble) * 2, t = torch::randn({2, 3, 11}, torch::kDouble) * 2;
  auto targets = torch::randint(0, 11, {2, 3});
  for (double tau : {1.0, 2.0}) {
    auto d = distill_loss(s, t, targets, tau, 0.0, 0.0);
    namespace F = torch::nn::functional;
    auto log_ps = torch::log_softmax(s.reshape({6, 11}) / tau, -1),
         log_pt = torch::log_softmax(t.reshape({6, 11}) / tau, -1);
    auto ref = F::kl_div(log_ps, log_pt, F::KLDivFuncOptions().reduction(torch::kBatchMean).log_target(true));
    EXPECT_NEAR(d.kl.item<double>(), ref.item<double>(), 1e-6) << "tau " << tau;
    EXPECT_NEAR(d.total.item<double>(), tau * tau * ref.item<double>(), 1e-5);
  }
}

TEST(Objectives, DistillTotalAddsCeAndZLoss) {
  torch::manual_seed(1);
  auto s = torch::randn({1, 4, 7}), t = torch::randn({1, 4, 7});
  auto targets = torch::randint(0, 7, {1, 4});
  auto d = distill_loss(s, t, targets, 2.0, 0.5, 1e-2);
  auto lm = lm_loss(s, targets, 0.0);
  EXPECT_NEAR(d.ce.item<double>(), lm.ce.item<double>(), 1e-6);
  EXPECT_NEAR(d.total.item<double>(), 4 * d.kl.item<double>() + 0.5 * lm.ce.item<double>() + 1e-2 * lm.z.item<double>(),
              1e-5);
  EXPECT_NEAR(distill_loss(s, s, targets, 1.0, 0.0, 0.0).kl.item<double>(), 0.0, 1e-6);  // KL(p ‖ p) = 0
}

// The fused loss's hand-written backward against autograd through the definition (float64), over several
// chunks including a ragged last one, for each term alone and all together.
TEST(Objectives, DistillGradientMatchesAutogradOfTheDefinition) {
  torch::manual_seed(2);
  auto s0 = torch::randn({2, 5, 13}, torch::kDouble) * 3, t = torch::randn({2, 5, 13}, torch::kDouble) * 3;
  auto targets = torch::randint(0, 13, {2, 5});
  struct Case {
    double tau, w, zeta;
  };
  for (const Case c :
       {Case{1.0, 0.0, 0.0}, Case{2.0, 0.0, 0.0}, Case{0.5, 0.7, 0.0}, Case{1.0, 0.0, 0.3}, Case{1.5, 0.4, 0.2}}) {
    auto s = s0.clone().requires_grad_(true);
    auto d = distill_loss(s, t, targets, c.tau, c.w, c.zeta, /*chunk_rows=*/4);  // 10 rows: chunks 4, 4, 2
    auto gs = torch::autograd::grad({d.total}, {s})[0];

    auto r = s0.clone().requires_grad_(true);
    auto log_ps = torch::log_softmax(r.reshape({10, 13}) / c.tau, -1);
    auto log_pt = torch::log_softmax(t.reshape({10, 13}) / c.tau, -1);
    auto kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1).mean();
    auto lse = torch::logsumexp(r.reshape({10, 13}), -1);
    auto ce = (lse - r.reshape({10, 13}).gather(1, targets.reshape({10, 1})).squeeze(1)).mean();
    auto total = c.tau * c.tau * kl + c.w * ce + c.zeta * lse.pow(2).mean();
    auto gr = torch::autograd::grad({total}, {r})[0];
    const std::string name =
        "tau " + std::to_string(c.tau) + " w " + std::to_string(c.w) + " zeta " + std::to_string(c.zeta);
    EXPECT_NEAR(d.total.item<double>(), total.item<double>(), 1e-12) << name;
    EXPECT_NEAR(d.kl.item<double>(), kl.item<double>(), 1e-12) << name;
    EXPECT_NEAR(d.ce.item<double>(), ce.item<double>(), 1e-12) << name;
    EXPECT_LT((gs - gr).abs().max().item<double>(), 1e-14) << name;
  }
  // bf16 logits (autocast): the gradient comes back in the logits' dtype, computed in fp32.
  auto sb = s0.to(torch::kBFloat16).requires_grad_(true);
  auto db = distill_loss(sb, t.to(torch::kBFloat16), targets, 1.0, 0.0, 0.0, 4);
  auto gb = torch::autograd::grad({db.total}, {sb})[0];
  EXPECT_EQ(gb.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(db.total.scalar_type(), torch::kFloat);
}

TEST(Objectives, AttentionTransferGradientsStayInsideTheAttentionBlocks) {
  auto teacher = supra::test::random_model(teacher_config(), 0, 0.1);
  auto student = supra::test::random_model(teacher_config(), 0, 0.1);
  supra::convert_to_supra(student, {}, 0);
  for (auto& p : teacher->parameters()) p.requires_grad_(false);
  auto ids = torch::randint(3, 60, {2, 12});
  auto resets = torch::zeros({2, 12}, torch::kBool);
  resets.index_put_({1, 5}, true);
  auto loss = attention_transfer_loss(teacher, student, ids, resets);
  ASSERT_EQ(loss.per_layer.size(), 2u);
  for (const auto& l : loss.per_layer) EXPECT_GT(l.item<double>(), 0.0);
  EXPECT_NEAR(loss.total.item<double>(), (loss.per_layer[0] + loss.per_layer[1]).item<double>() / 2, 1e-6);
  loss.total.backward();
  for (const auto& p : student->named_parameters()) {
    const bool attention = p.key().find(".self_attn.") != std::string::npos;
    EXPECT_EQ(p.value().grad().defined(), attention) << p.key();
    if (attention) {
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
    }
  }
  // A student equal to the teacher (an unconverted copy) has zero loss.
  auto same = supra::test::random_model(teacher_config(), 0, 0.1);
  EXPECT_NEAR(attention_transfer_loss(teacher, same, ids, resets).total.item<double>(), 0.0, 1e-10);
}

TEST(Objectives, OutputProjectionFitIsTheLeastSquaresMap) {
  auto teacher = supra::test::random_model(teacher_config(), 0, 0.1);
  auto student = supra::test::random_model(teacher_config(), 0, 0.1);
  supra::convert_to_supra(student, {}, 0);
  auto ids = torch::randint(3, 60, {4, 24});  // 96 tokens > H·d = 32 unknowns per output
  auto resets = torch::zeros({4, 24}, torch::kBool);
  resets.index_put_({1, 9}, true);
  const auto before = attention_transfer_loss(teacher, student, ids, resets).per_layer;

  // The reference, independent of the fit's normal equations: each layer's GroupNorm-ed heads z read through an
  // identity o_proj (hidden = H·d here), the teacher's output y, and float64 least squares (QR) on them.
  std::vector<torch::Tensor> zs, ref;
  {
    auto probe = supra::test::random_model(teacher_config(), 0, 0.1);
    supra::convert_to_supra(probe, {}, 0);
    torch::NoGradGuard no_grad;
    for (int64_t l = 0; l < 2; ++l)
      probe->layer(l)->self_attn->named_parameters()["o_proj.weight"].copy_(torch::eye(32));
    int64_t l = 0;
    teacher->run_blocks(
        ids, resets, [&](supra::DecoderLayer block, const torch::Tensor& h, const supra::AttentionContext& ctx) {
          auto x = block->input_layernorm(h);
          auto y = block->self_attn->forward(x, ctx);
          zs.push_back(probe->layer(l++)->self_attn->forward(x, ctx).reshape({-1, 32}).to(torch::kDouble));
          // rcond drops the directions GroupNorm removes (each head's sum: singular values at fp32 rounding, ~1e-8 of
          // the largest), which the fit's ridge leaves out too; the data's own smallest ones are ~1e-2 of it.
          ref.push_back(
              std::get<0>(torch::linalg_lstsq(zs.back(), y.reshape({-1, 32}).to(torch::kDouble), 1e-4, "gelsd")));
          auto hh = h + y;
          return hh + block->mlp(block->post_attention_layernorm(hh));
        });
  }

  OutputProjectionFit fit;  // two micro-batches, as the trainer feeds them
  fit.accumulate(teacher, student, ids.narrow(0, 0, 2), resets.narrow(0, 0, 2));
  fit.accumulate(teacher, student, ids.narrow(0, 2, 2), resets.narrow(0, 2, 2));
  int reduced = 0;
  const auto r = fit.solve(student, [&](torch::Tensor&) { ++reduced; });
  EXPECT_EQ(reduced, 1 + 2 * 2);  // the scalars, then G and C of each layer
  EXPECT_EQ(r.tokens, 96.0);
  const auto after = attention_transfer_loss(teacher, student, ids, resets).per_layer;
  ASSERT_EQ(r.after.size(), 2u);
  for (int64_t l = 0; l < 2; ++l) {
    // The reported errors are the attention-transfer losses of the same tokens, before and after.
    EXPECT_NEAR(r.before[l], before[l].item<double>(), 1e-4 * before[l].item<double>()) << l;
    EXPECT_NEAR(r.after[l], after[l].item<double>(), 1e-4) << l;
    EXPECT_LT(r.after[l], 1.0);
    EXPECT_LT(r.after[l], r.before[l]);
    // G is singular (GroupNorm: each head's d values sum to 0), so compare the maps where they act: the fitted
    // outputs z Wᵀ on the tokens, against the least-squares ones.
    const auto w = student->layer(l)->self_attn->named_parameters()["o_proj.weight"].to(torch::kDouble);
    const auto fitted = zs[l].mm(w.t()), best = zs[l].mm(ref[l]);
    EXPECT_LT((fitted - best).norm().item<double>(), 1e-3 * best.norm().item<double>()) << l;
  }
}

TEST(SoftmaxAttention, PackedDocumentsDoNotSeeEachOther) {
  auto m = supra::test::random_model(teacher_config(), 3, 0.2);
  torch::NoGradGuard no_grad;
  auto a = torch::randint(3, 60, {1, 5}), b = torch::randint(3, 60, {1, 7});
  auto resets = torch::zeros({1, 12}, torch::kBool);
  resets.index_put_({0, 0}, true);
  resets.index_put_({0, 5}, true);
  auto packed = m->forward(torch::cat({a, b}, 1), {}, {}, resets);
  auto alone = m->forward(b);
  // RoPE depends on relative positions only: the second document alone gives the same logits.
  EXPECT_TRUE(torch::allclose(packed.narrow(1, 5, 7), alone, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(packed.narrow(1, 0, 5), m->forward(a), 1e-5, 1e-5));
}

TEST(Trainer, AttentionObjectiveChangesOnlyTheTrainableParameters) {
  TempDir tmp;
  make_fixture(tmp.path());
  auto c = config(tmp.path(), "attn", Objective::kAttention);  // default trainable set: feature_map, o_proj
  std::vector<double> losses;
  Trainer t(c, "");
  t.on_step = [&](int64_t, double loss) { losses.push_back(loss); };
  t.run();
  EXPECT_LT(losses.back(), losses.front());
  auto before = supra::load_safetensors_dir(tmp.path() / "converted");
  auto after = supra::load_safetensors_dir(tmp.path() / "attn/checkpoints/step_00000006");
  int trainable = 0;
  for (const auto& [name, w] : before) {
    if (name.find("feature_map") != std::string::npos || name.find("o_proj") != std::string::npos) {
      ++trainable;
      EXPECT_FALSE(torch::equal(w, after.at(name))) << name << " is trainable but did not change";
    } else {
      EXPECT_TRUE(torch::equal(w, after.at(name))) << name << " is frozen but changed";
    }
  }
  EXPECT_EQ(trainable, 2 * 5);  // 2 layers × (feature_map_q/k weight and bias, o_proj weight)
  // A training checkpoint is a model folder like any other: its config.json records the decay values.
  const auto cfg = nlohmann::json::parse(supra::read_file(tmp.path() / "attn/checkpoints/step_00000006/config.json"));
  EXPECT_EQ(cfg.at("supra").at("log_gamma").size(), 4u);
}

TEST(Trainer, OutputProjectionFitStartsTheStageAndIsNotRedoneOnResume) {
  TempDir tmp;
  make_fixture(tmp.path());
  std::vector<double> plain, fitted;
  for (bool fit : {false, true}) {
    auto c = config(tmp.path(), fit ? "fit" : "nofit", Objective::kAttention);
    c.o_proj_fit_batches = fit ? 2 : 0;
    Trainer t(c, "");
    t.on_step = [&](int64_t, double loss) { (fit ? fitted : plain).push_back(loss); };
    t.run();
  }
  EXPECT_LT(fitted.front(), plain.front());  // the first step already starts from the fitted o_proj
  EXPECT_LT(fitted.front(), 1.0);            // the mean relative error: below zero output's
  std::istringstream lines(supra::read_file(tmp.path() / "fit/metrics.jsonl"));
  std::string line;
  std::getline(lines, line);
  const auto first = nlohmann::json::parse(line);
  EXPECT_EQ(first.at("o_proj_fit_tokens").get<double>(), 2 * 4 * 16);
  ASSERT_EQ(first.at("layer_loss").size(), 2u);
  EXPECT_LT(first.at("layer_loss")[0].get<double>(), first.at("layer_loss_before_fit")[0].get<double>());

  // Stopped after step 3 and resumed: the resumed run keeps its checkpoint's o_proj (no second fit), bitwise.
  auto c = config(tmp.path(), "resumed", Objective::kAttention);
  c.o_proj_fit_batches = 2;
  c.resume = ResumeMode::kAuto;
  reset_stop_request();
  {
    Trainer t(c, "");
    t.on_step = [](int64_t step, double) {
      if (step == 3) std::raise(SIGTERM);
    };
    EXPECT_TRUE(t.run().stopped_by_signal);
  }
  reset_stop_request();
  EXPECT_EQ(Trainer(c, "").run().final_step, 6);
  auto a = supra::load_safetensors_dir(tmp.path() / "fit/checkpoints/step_00000006");
  auto b = supra::load_safetensors_dir(tmp.path() / "resumed/checkpoints/step_00000006");
  for (const auto& [name, w] : a) EXPECT_TRUE(torch::equal(w, b.at(name))) << name;

  // Bad input: o_proj frozen, or another objective.
  auto bad = config(tmp.path(), "bad", Objective::kAttention);
  bad.o_proj_fit_batches = 1;
  bad.trainable = "feature_map";
  EXPECT_THROW(Trainer(bad, "").run(), supra::Error);
  bad.trainable = "";
  bad.objective = Objective::kDistill;
  EXPECT_THROW(Trainer(bad, "").run(), supra::Error);
  EXPECT_FALSE(fs::exists(tmp.path() / "bad" / "checkpoints"));
}

TEST(Trainer, TrainableNamesAreChecked) {
  TempDir tmp;
  make_fixture(tmp.path());
  auto c = config(tmp.path(), "bad", Objective::kAttention);
  c.trainable = "mlp";
  EXPECT_THROW(Trainer(c, "").run(), supra::Error);  // outside the attention blocks
  c.trainable = "all";
  EXPECT_THROW(Trainer(c, "").run(), supra::Error);  // the MLPs would get no gradient
  c.objective = Objective::kDistill;
  c.trainable = "no_such_parameter";
  EXPECT_THROW(Trainer(c, "").run(), supra::Error);
}

TEST(Trainer, TeacherObjectivesOnAConvertedModelNeedATeacher) {
  TempDir tmp;
  make_fixture(tmp.path());
  auto c = config(tmp.path(), "noteacher", Objective::kDistill);
  c.model_path = (tmp.path() / "converted").string();
  try {
    Trainer(c, "").run();
    FAIL();
  } catch (const supra::Error& e) {
    EXPECT_NE(std::string(e.what()).find("teacher.path"), std::string::npos) << e.what();
  }
  c.teacher_path = (tmp.path() / "converted").string();  // a SUPRA model is no teacher
  EXPECT_THROW(Trainer(c, "").run(), supra::Error);
  // A teacher of another shape.
  auto other = supra::test::random_model(supra::test::tiny_config({.vocab = 80, .bos = 1, .eos = 2}), 0, 0.1);
  supra::save_model_folder(other, tmp.path() / "other");
  c.teacher_path = (tmp.path() / "other").string();
  try {
    Trainer(c, "").run();
    FAIL();
  } catch (const supra::Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocab_size"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp.path() / "noteacher" / "checkpoints"));
}

namespace {

std::vector<Stage> recipe_stages(const TrainConfig& recipe) {
  const std::vector<std::string> names = {"attention", "distill"};
  std::vector<Stage> stages;
  for (size_t i = 0; i < names.size(); ++i) {
    Stage s{names[i], recipe, ""};
    const auto p = stage_paths(recipe, names, i);
    s.config.model_path = p.model_path, s.config.out_dir = p.out_dir, s.config.teacher_path = p.teacher_path;
    s.config.objective = i == 0 ? Objective::kAttention : Objective::kDistill;
    s.config.o_proj_fit_batches = i == 0 ? 1 : 0;
    s.config.steps = i == 0 ? 4 : 6;
    stages.push_back(s);
  }
  return stages;
}

}  // namespace

TEST(Stages, RecipeResumedInsideItsSecondStageIsBitwiseIdentical) {
  TempDir tmp;
  make_fixture(tmp.path());
  auto full = config(tmp.path(), "full", Objective::kLm);
  run_stages(full, recipe_stages(full));
  auto split = config(tmp.path(), "split", Objective::kLm);
  split.resume = ResumeMode::kAuto;
  auto stages = recipe_stages(split);
  {  // stop in stage 2 after its step 3
    reset_stop_request();
    Trainer t(stages[0].config, "");
    t.run();
    Trainer t2(stages[1].config, "");
    t2.on_step = [](int64_t step, double) {
      if (step == 3) std::raise(SIGTERM);
    };
    EXPECT_TRUE(t2.run().stopped_by_signal);
    reset_stop_request();
  }
  EXPECT_EQ(run_stages(split, stages).final_step, 6);
  auto a = supra::load_safetensors_dir(tmp.path() / "full/2-distill/checkpoints/step_00000006");
  auto b = supra::load_safetensors_dir(tmp.path() / "split/2-distill/checkpoints/step_00000006");
  for (const auto& [name, w] : a) EXPECT_TRUE(torch::equal(w, b.at(name))) << name;
  // The stage list cannot change under a started recipe.
  auto changed = stages;
  changed[0].config.steps = 5;
  EXPECT_THROW(run_stages(split, changed), supra::Error);
  changed = stages;
  changed[1].name = "finetune";
  changed[1].config.out_dir = stage_dir(split.out_dir, 1, "finetune").string();
  EXPECT_THROW(run_stages(split, changed), supra::Error);
  // Rerunning without resume is refused; with it, a finished recipe does nothing.
  split.resume = ResumeMode::kNone;
  EXPECT_THROW(run_stages(split, stages), supra::Error);
}

TEST(Trainer, DistillWithActivationCheckpointingFollowsThePlainForward) {
  TempDir tmp;
  make_fixture(tmp.path());
  std::vector<double> plain, checkpointed;
  for (bool ckpt : {false, true}) {
    auto c = config(tmp.path(), ckpt ? "ckpt" : "plain", Objective::kDistill);
    c.activation_checkpointing = ckpt;
    c.steps = 3;
    Trainer t(c, "");
    t.on_step = [&](int64_t, double loss) { (ckpt ? checkpointed : plain).push_back(loss); };
    t.run();
  }
  ASSERT_EQ(plain.size(), 3u);
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_NEAR(plain[i], checkpointed[i], 1e-6 * std::abs(plain[i]));
}
