// Every measurement kind the proto names has its row everywhere: the server's
// table (with the proto's message types), core's Method, the fake engine's
// results; and the effective spec of each kind reads back as the same request.
#include "server/kind_table.h"

#include <set>
#include <string>
#include <variant>
#include <vector>

#include "core/api/measurement.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/spec_conversion.h"
#include "tests/server/fake_engine.h"

namespace curvd::server {
namespace {

namespace v1 = ::curvd::v1;
using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::util::MessageDifferencer;
using ::testing::UnorderedElementsAreArray;

constexpr char kPlan[] = "plan";

// The kind fields of a oneof, or of a whole message, but `plan`.
std::vector<const FieldDescriptor*> KindFields(const Descriptor* message,
                                               const char* oneof) {
  std::vector<const FieldDescriptor*> fields;
  if (oneof != nullptr) {
    const google::protobuf::OneofDescriptor* o = message->FindOneofByName(oneof);
    for (int i = 0; i < o->field_count(); ++i) {
      if (o->field(i)->name() != kPlan) fields.push_back(o->field(i));
    }
  } else {
    for (int i = 0; i < message->field_count(); ++i) {
      fields.push_back(message->field(i));
    }
  }
  return fields;
}

std::vector<std::string> Names(const std::vector<const FieldDescriptor*>& fs) {
  std::vector<std::string> names;
  for (const FieldDescriptor* f : fs) names.push_back(f->name());
  return names;
}

std::vector<std::string> RowNames() {
  std::vector<std::string> names;
  for (const KindRow& row : KindTable()) names.push_back(row.name);
  return names;
}

// Checks that `fields` are exactly the table's kinds, each of the row's
// message type (`spec` or result).
void ExpectTableMatches(const std::vector<const FieldDescriptor*>& fields,
                        bool spec) {
  EXPECT_THAT(Names(fields), UnorderedElementsAreArray(RowNames()));
  for (const FieldDescriptor* field : fields) {
    SCOPED_TRACE(field->full_name());
    const KindRow* row = FindKindRow(field->name());
    ASSERT_NE(row, nullptr) << "no server row";
    EXPECT_EQ(field->message_type(), spec ? row->spec_type : row->result_type);
  }
}

TEST(KindTableTest, EveryProtoKindHasAServerRowOfItsTypes) {
  ExpectTableMatches(KindFields(v1::MeasurementSpec::descriptor(), "kind"),
                     /*spec=*/true);
  ExpectTableMatches(KindFields(v1::MeasurementPlanSpec::descriptor(), nullptr),
                     /*spec=*/true);
  ExpectTableMatches(KindFields(v1::Measurement::descriptor(), "result"),
                     /*spec=*/false);
  ExpectTableMatches(
      KindFields(v1::MeasurementPlanResult::descriptor(), nullptr),
      /*spec=*/false);
  // The plan fields of the two oneofs are the plan messages.
  EXPECT_EQ(v1::MeasurementSpec::descriptor()->FindFieldByName(kPlan)
                ->message_type(),
            v1::MeasurementPlanSpec::descriptor());
  EXPECT_EQ(v1::Measurement::descriptor()->FindFieldByName(kPlan)
                ->message_type(),
            v1::MeasurementPlanResult::descriptor());
}

// One default-constructed method of every kind of core::Method.
template <size_t... I>
std::vector<core::Method> EveryMethod(std::index_sequence<I...>) {
  return {core::Method(std::in_place_index<I>)...};
}
std::vector<core::Method> EveryMethod() {
  return EveryMethod(
      std::make_index_sequence<std::variant_size_v<core::Method>>());
}

TEST(KindTableTest, EveryCoreMethodIsAProtoKind) {
  std::vector<std::string> names;
  for (const core::Method& method : EveryMethod()) {
    names.push_back(core::MethodName(method));
  }
  EXPECT_THAT(names, ::testing::ElementsAreArray(RowNames()));
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(),
            names.size());
}

// A valid spec of the kind `row` alone: defaults, and the loss expansion's
// required numbers.
v1::MeasurementSpec SpecOf(const KindRow& row) {
  v1::MeasurementSpec spec;
  spec.set_shard_uri("builtin://gaussian_regression?n=8&d=2");
  spec.GetReflection()->MutableMessage(
      &spec, v1::MeasurementSpec::descriptor()->FindFieldByName(row.name));
  if (spec.has_loss_expansion()) {
    v1::LossExpansionSpec* e = spec.mutable_loss_expansion();
    e->set_rho(0.1);
    e->set_h0(2);
    e->set_ess(64);
    e->set_num_steps(100);
  }
  return spec;
}

TEST(KindTableTest, TheFakeEngineHasAResultOfEveryKind) {
  for (const KindRow& row : KindTable()) {
    SCOPED_TRACE(row.name);
    v1::Measurement m;
    *m.mutable_spec() = SpecOf(row);
    auto request = ToCoreRequest(m.spec());
    ASSERT_TRUE(request.ok()) << request.status();
    core::MeasurementResult result;
    result.methods = testing::FakeResults(*request);
    ApplyResult(result, &m);
    const FieldDescriptor* field = m.GetReflection()->GetOneofFieldDescriptor(
        m, v1::Measurement::descriptor()->FindOneofByName("result"));
    ASSERT_NE(field, nullptr);
    EXPECT_EQ(field->name(), row.name);
    EXPECT_GT(m.GetReflection()->GetMessage(m, field).ByteSizeLong(), 0u);
  }
}

// The effective spec writes every option out: reading it gives the same
// request, and writing that again the same spec; unset fields of the client's
// spec are set in it.
TEST(KindTableTest, EffectiveSpecsReadBackAsTheSameRequest) {
  for (const KindRow& row : KindTable()) {
    SCOPED_TRACE(row.name);
    const v1::MeasurementSpec spec = SpecOf(row);
    auto request = ToCoreRequest(spec);
    ASSERT_TRUE(request.ok()) << request.status();
    const v1::MeasurementSpec effective = EffectiveSpec(spec, *request);
    EXPECT_EQ(effective.loss(), v1::LOSS_FUNCTION_CROSS_ENTROPY);
    EXPECT_EQ(effective.precision(), v1::PRECISION_FLOAT32);
    EXPECT_EQ(effective.operator_(), v1::OPERATOR_HESSIAN);
    EXPECT_EQ(effective.shard_uri(), spec.shard_uri());
    auto again = ToCoreRequest(effective);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_TRUE(MessageDifferencer::Equals(EffectiveSpec(spec, *again),
                                           effective))
        << EffectiveSpec(spec, *again).DebugString() << " vs "
        << effective.DebugString();
  }
  // A plan of two kinds keeps its shape.
  v1::MeasurementSpec plan;
  plan.mutable_plan()->mutable_sharpness();
  plan.mutable_plan()->mutable_spectral_density()->set_runs(3);
  auto request = ToCoreRequest(plan);
  ASSERT_TRUE(request.ok()) << request.status();
  const v1::MeasurementSpec effective = EffectiveSpec(plan, *request);
  ASSERT_TRUE(effective.has_plan());
  EXPECT_EQ(effective.plan().spectral_density().runs(), 3);
  EXPECT_EQ(effective.plan().spectral_density().steps(),
            core::SlqOptions().steps);
  EXPECT_TRUE(effective.plan().sharpness().has_top_k());
  EXPECT_FALSE(effective.plan().has_hutchpp());
}

TEST(KindTableTest, AnUnsetKindNamesEveryKind) {
  auto request = ToCoreRequest(v1::MeasurementSpec());
  ASSERT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
  for (const KindRow& row : KindTable()) {
    EXPECT_THAT(std::string(request.status().message()),
                ::testing::HasSubstr(row.name));
  }
}

}  // namespace
}  // namespace curvd::server
