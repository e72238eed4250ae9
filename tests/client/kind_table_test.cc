#include "client/kind_table.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/curvctl_commands.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::client {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::testing::HasSubstr;
namespace v1 = ::curvd::v1;

const CommandDef& Measure() {
  for (const CommandDef& command : CurvctlCommands()) {
    if (command.name == "measure") return command;
  }
  ADD_FAILURE() << "no measure command";
  static const CommandDef* none = new CommandDef;
  return *none;
}

// The names of the kind fields of `message`: the fields of its oneof
// `oneof_name`, or every field when that is empty; "plan" left out.
std::vector<std::string> KindFields(const Descriptor* message,
                                    const std::string& oneof_name) {
  std::vector<std::string> names;
  if (oneof_name.empty()) {
    for (int i = 0; i < message->field_count(); ++i) {
      names.push_back(message->field(i)->name());
    }
  } else {
    const google::protobuf::OneofDescriptor* oneof =
        message->FindOneofByName(oneof_name);
    EXPECT_NE(oneof, nullptr) << message->full_name() << "." << oneof_name;
    for (int i = 0; oneof != nullptr && i < oneof->field_count(); ++i) {
      names.push_back(oneof->field(i)->name());
    }
  }
  names.erase(std::remove(names.begin(), names.end(), "plan"), names.end());
  return names;
}

std::vector<std::string> RowNames() {
  std::vector<std::string> names;
  for (const KindRow& row : CurvctlKinds()) names.push_back(row.name);
  return names;
}

// Each message that holds one field per kind: the field's type must be the
// row's spec or result type.
struct KindHolder {
  const Descriptor* message;
  std::string oneof;  // empty: every field is a kind
  bool holds_specs;
};

std::vector<KindHolder> KindHolders() {
  return {{v1::MeasurementSpec::descriptor(), "kind", true},
          {v1::MeasurementPlanSpec::descriptor(), "", true},
          {v1::Measurement::descriptor(), "result", false},
          {v1::MeasurementPlanResult::descriptor(), "", false}};
}

TEST(KindTableTest, EveryKindOfTheProtoHasOneRowInFieldOrder) {
  for (const KindHolder& holder : KindHolders()) {
    // Equal lists: no kind without a row, no row without its field, and the
    // rows in the proto's order (the CSV columns and summaries follow it).
    EXPECT_EQ(RowNames(), KindFields(holder.message, holder.oneof))
        << holder.message->full_name();
    for (const KindRow& row : CurvctlKinds()) {
      const FieldDescriptor* field = holder.message->FindFieldByName(row.name);
      ASSERT_NE(field, nullptr)
          << holder.message->full_name() << " " << row.name;
      EXPECT_EQ(field->message_type(),
                holder.holds_specs ? row.spec_type : row.result_type)
          << holder.message->full_name() << "." << row.name;
    }
  }
}

TEST(KindTableTest, FindsKindsByName) {
  ASSERT_NE(FindKind("trace_h3"), nullptr);
  EXPECT_EQ(FindKind("trace_h3")->name, "trace_h3");
  EXPECT_EQ(FindKind("plan"), nullptr);
  EXPECT_EQ(FindKind("curvature"), nullptr);
  EXPECT_EQ(KindNameList(),
            "sharpness, hessian_trace, spectral_density, hutchpp, "
            "adaptive_trace, trace_h3, loss_expansion, exact_hessian, "
            "power_iteration, loss_slice, llc, llc_calibration, gop");
}

TEST(KindTableTest, EveryFlagARowReadsIsAMeasureFlag) {
  std::set<std::string> measure_flags;
  for (const FlagDef& flag : Measure().flags) measure_flags.insert(flag.name);
  for (const KindRow& row : CurvctlKinds()) {
    for (const std::string& name : row.flags) {
      EXPECT_TRUE(measure_flags.count(name)) << row.name << " --" << name;
    }
    // A flag a kind introduces names that kind in its help, and it reads it.
    for (const FlagDef& flag : row.new_flags) {
      EXPECT_THAT(flag.help, HasSubstr(row.name)) << "--" << flag.name;
      EXPECT_THAT(row.flags, ::testing::Contains(flag.name)) << row.name;
    }
  }
}

// A valid value of `flag` other than its default.
std::string OtherValue(const FlagDef& flag) {
  switch (flag.type) {
    case FlagDef::Type::kInt:
      return "7";
    case FlagDef::Type::kDouble:
      return "0.5";
    case FlagDef::Type::kBool:
      return "true";
    case FlagDef::Type::kString:
      break;
  }
  if (flag.name == "distribution") return "gaussian";
  if (flag.name == "direction") return "random";
  return "x";
}

// The spec `row` fills from `args`, or its error as text.
std::string Filled(const KindRow& row, const std::vector<std::string>& args) {
  absl::StatusOr<ParsedFlags> flags = ParseFlags(Measure(), args);
  EXPECT_TRUE(flags.ok()) << flags.status();
  if (!flags.ok()) return "";
  std::unique_ptr<google::protobuf::Message> spec(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(row.spec_type)
          ->New());
  absl::Status status = row.fill_spec(*flags, spec.get());
  return status.ok() ? spec->ShortDebugString() : status.ToString();
}

// `flags` lists exactly what fill_spec reads: a later check of the help
// against the server's defaults relies on it.
TEST(KindTableTest, RowsListExactlyTheFlagsTheyRead) {
  for (const KindRow& row : CurvctlKinds()) {
    const std::string defaults = Filled(row, {});
    for (const FlagDef& flag : Measure().flags) {
      const std::string changed =
          Filled(row, {absl::StrCat("--", flag.name, "=", OtherValue(flag))});
      const bool listed = std::find(row.flags.begin(), row.flags.end(),
                                    flag.name) != row.flags.end();
      if (listed) {
        EXPECT_NE(changed, defaults) << row.name << " ignores --" << flag.name;
      } else {
        EXPECT_EQ(changed, defaults)
            << row.name << " reads --" << flag.name << " without listing it";
      }
    }
  }
}

TEST(KindTableTest, FillRefusesAnotherKindsSpec) {
  v1::ExactHessianSpec wrong;
  absl::StatusOr<ParsedFlags> flags = ParseFlags(Measure(), {});
  ASSERT_TRUE(flags.ok());
  EXPECT_TRUE(
      absl::IsInternal(FindKind("sharpness")->fill_spec(*flags, &wrong)));
}

// Every column a summary fills is in the CSV: a kind's own, another kind's, or
// one of the common columns that kinds fill.
TEST(KindTableTest, SummariesFillOnlyColumnsOfTheCsv) {
  std::set<std::string> columns = {"top_eigenvalues", "iterations", "probes"};
  for (const KindRow& row : CurvctlKinds()) {
    for (const std::string& column : row.csv_columns) {
      EXPECT_TRUE(columns.insert(column).second) << "two kinds own " << column;
    }
  }
  for (const KindRow& row : CurvctlKinds()) {
    const google::protobuf::Message* empty =
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(
            row.result_type);
    const google::protobuf::Message* spec =
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(
            row.spec_type);
    for (const auto& [column, value] : row.summarize(*empty, *spec).columns) {
      EXPECT_TRUE(columns.count(column)) << row.name << " fills " << column;
    }
    EXPECT_FALSE(row.summarize(*empty, *spec).detail.empty()) << row.name;
  }
}

}  // namespace
}  // namespace curvd::client
