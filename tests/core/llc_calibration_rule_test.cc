// RecommendCalibrationCell on hand-made grids whose answer is known.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/measurements/llc_calibration.h"

namespace curvd::core {
namespace {

LlcCalibrationCell Cell(double step_size, double localization, double llc,
                        double standard_error = 0.5, double n_beta = 50) {
  LlcCalibrationCell cell;
  cell.step_size = step_size;
  cell.localization = localization;
  cell.n_beta = n_beta;
  cell.result.llc_mean = llc;
  cell.result.llc_standard_error = standard_error;
  cell.result.r_hat = 1.01;
  cell.result.chains.resize(4);
  return cell;
}

LlcCalibrationCell Diverged(LlcCalibrationCell cell, int chains) {
  cell.result.chains_diverged = chains;
  for (int c = 0; c < chains; ++c) cell.result.chains[c].diverged = true;
  return cell;
}

LlcCalibrationCell WithRHat(LlcCalibrationCell cell, double r_hat) {
  cell.result.r_hat = r_hat;
  return cell;
}

LlcCalibrationCell Rising(LlcCalibrationCell cell,
                          std::initializer_list<int> chains) {
  for (int c : chains) cell.result.chains[c].still_rising = true;
  return cell;
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Step sizes 1e-6..1e-3 (fastest) x localizations 1, 10, 100, n_beta 50,
// standard errors 0.5 (combined 0.707, so cells agree within 1.414):
//   gamma 1:   10, 10.4, 10.9, 15 (lambda_hat rises at the largest step)
//   gamma 10:  9.8, 10.1, 10.3, 2 chains diverged
//   gamma 100: 9, R-hat 1.3, 9.2, chains 2 and 3 still rising
// Plateaus: gamma 1 and gamma 10 up to 1e-4 (a tie: gamma 1 wins); gamma 100
// has none (its passing cells are separated by rejected ones).
std::vector<LlcCalibrationCell> HandMadeGrid() {
  return {
      Cell(1e-6, 1, 10),    Cell(1e-5, 1, 10.4),
      Cell(1e-4, 1, 10.9),  Cell(1e-3, 1, 15),
      Cell(1e-6, 10, 9.8),  Cell(1e-5, 10, 10.1),
      Cell(1e-4, 10, 10.3), Diverged(Cell(1e-3, 10, 30), 2),
      Cell(1e-6, 100, 9),   WithRHat(Cell(1e-5, 100, 9.1), 1.3),
      Cell(1e-4, 100, 9.2), Rising(Cell(1e-3, 100, 9.3), {2, 3}),
  };
}

TEST(RecommendCalibrationCellTest, LargestStepOnAPlateauSmallestGammaOnTies) {
  LlcCalibrationResult result;
  result.cells = HandMadeGrid();
  RecommendCalibrationCell(result);
  ASSERT_EQ(result.recommended, 2);  // step 1e-4, gamma 1
  const auto& cells = result.cells;
  EXPECT_EQ(cells[2].rejection, "");
  EXPECT_TRUE(Contains(cells[0].rejection, "step size 0.0001 is larger"))
      << cells[0].rejection;
  EXPECT_TRUE(Contains(cells[1].rejection, "step size 0.0001 is larger"));
  EXPECT_TRUE(Contains(cells[3].rejection,
                       "lambda_hat 15 differs from 10.9 at step size 0.0001 "
                       "by 4.1 > 2 combined standard errors (1.41)"))
      << cells[3].rejection;
  EXPECT_TRUE(Contains(cells[6].rejection, "localization 1 is smaller"))
      << cells[6].rejection;
  EXPECT_EQ(cells[7].rejection, "2 chains diverged");
  EXPECT_TRUE(
      Contains(cells[8].rejection, "the cell at step size 1e-05 was rejected"))
      << cells[8].rejection;
  EXPECT_EQ(cells[9].rejection, "R-hat 1.3 > 1.1");
  EXPECT_TRUE(Contains(cells[10].rejection,
                       "the cell at step size 1e-05 was rejected"));
  EXPECT_EQ(cells[11].rejection, "chains 2, 3 still rising");
  for (int i = 0; i < 12; ++i) {
    if (i != 2) {
      EXPECT_FALSE(cells[i].rejection.empty()) << i;
    }
  }
  EXPECT_TRUE(Contains(result.reason,
                       "step size 0.0001, localization 1, n_beta 50: "
                       "lambda_hat 10.9 +- 0.5 agrees with 10.4 +- 0.5 at "
                       "step size 1e-05 by 0.5 <= 1.41 (9 of 12 cells "
                       "passed)"))
      << result.reason;
}

TEST(RecommendCalibrationCellTest, DoesNotDependOnTheCellsOrder) {
  LlcCalibrationResult result;
  result.cells = HandMadeGrid();
  std::reverse(result.cells.begin(), result.cells.end());
  RecommendCalibrationCell(result);
  ASSERT_EQ(result.recommended, 9);
  EXPECT_EQ(result.cells[9].step_size, 1e-4);
  EXPECT_EQ(result.cells[9].localization, 1);
}

TEST(RecommendCalibrationCellTest, NoPlateauGivesMinusOneAndSaysWhy) {
  LlcCalibrationResult result;
  result.cells = {
      Cell(1e-5, 1, 10),
      Cell(1e-4, 1, 14),
      Cell(1e-3, 1, 20),  // lambda_hat never settles
      Cell(1e-5, 10, -0.5),
      Cell(1e-4, 10, 9),
      WithRHat(Cell(1e-3, 10, 9.2), 1.5),  // one passing cell on the line
  };
  RecommendCalibrationCell(result);
  EXPECT_EQ(result.recommended, -1);
  EXPECT_TRUE(
      Contains(result.reason, "no cell is on a plateau (4 of 6 cells passed)"))
      << result.reason;
  EXPECT_TRUE(Contains(result.reason, "R-hat <= 1.1"));
  for (const auto& cell : result.cells) EXPECT_FALSE(cell.rejection.empty());
  EXPECT_TRUE(Contains(result.cells[0].rejection,
                       "differs from 14 at step size 0.0001"))
      << result.cells[0].rejection;
  EXPECT_EQ(result.cells[3].rejection, "lambda_hat -0.5 <= 0");
  EXPECT_EQ(result.cells[5].rejection, "R-hat 1.5 > 1.1");
}

// One chain of four rising is what chance gives now and then; two are a
// transient.
TEST(RecommendCalibrationCellTest, OneRisingChainInFourDoesNotRejectACell) {
  LlcCalibrationResult result;
  result.cells = {Cell(1e-5, 1, 10), Rising(Cell(1e-4, 1, 10.2), {1})};
  RecommendCalibrationCell(result);
  EXPECT_EQ(result.recommended, 1) << result.reason;
  result.cells[1] = Rising(Cell(1e-4, 1, 10.2), {1, 3});
  RecommendCalibrationCell(result);
  EXPECT_EQ(result.recommended, -1) << result.reason;
  EXPECT_EQ(result.cells[1].rejection, "chains 1, 3 still rising");
}

TEST(RecommendCalibrationCellTest, ALineWithOneStepSizeHasNoPlateau) {
  LlcCalibrationResult result;
  result.cells = {Cell(1e-4, 1, 10), Cell(1e-4, 10, 10)};
  RecommendCalibrationCell(result);
  EXPECT_EQ(result.recommended, -1);
  EXPECT_TRUE(Contains(result.cells[0].rejection, "a single step size"))
      << result.cells[0].rejection;
  EXPECT_TRUE(Contains(result.reason, "(2 of 2 cells passed)"));
}

TEST(RecommendCalibrationCellTest, ARunAboveAJumpIsNotThePlateau) {
  // 10, 10.2 agree (the plateau), then a jump to 14, 14.1 (agreeing, but
  // biased by the larger steps): the recommendation stays at 1e-5.
  LlcCalibrationResult result;
  result.cells = {Cell(1e-6, 1, 10), Cell(1e-5, 1, 10.2), Cell(1e-4, 1, 14),
                  Cell(1e-3, 1, 14.1)};
  RecommendCalibrationCell(result);
  EXPECT_EQ(result.recommended, 1);
  EXPECT_TRUE(Contains(result.cells[3].rejection,
                       "second run above a jump past its line's plateau "
                       "(step sizes 1e-06 to 1e-05)"))
      << result.cells[3].rejection;
}

TEST(RecommendCalibrationCellTest, AgreementIsWithinTwoCombinedStandardErrors) {
  // Standard errors 3 and 4 combine to 5: a difference of 10 agrees, one
  // above it does not.
  LlcCalibrationResult result;
  result.cells = {Cell(1e-5, 1, 100, 3), Cell(1e-4, 1, 110, 4)};
  RecommendCalibrationCell(result);
  EXPECT_EQ(result.recommended, 1);
  result.cells[1].result.llc_mean = 110.001;
  RecommendCalibrationCell(result);
  EXPECT_EQ(result.recommended, -1);
  EXPECT_TRUE(Contains(result.cells[1].rejection, "by 10 > 2 combined"))
      << result.cells[1].rejection;
}

TEST(RecommendCalibrationCellTest, TiesOnStepAndGammaGoToTheSmallestNBeta) {
  LlcCalibrationResult result;
  result.cells = {
      Cell(1e-5, 1, 10, 0.5, 80),
      Cell(1e-4, 1, 10, 0.5, 80),
      Cell(1e-5, 1, 6, 0.5, 40),
      Cell(1e-4, 1, 6, 0.5, 40),
  };
  RecommendCalibrationCell(result);
  EXPECT_EQ(result.recommended, 3);
  EXPECT_TRUE(Contains(result.cells[1].rejection, "n_beta 40 is smaller"))
      << result.cells[1].rejection;
}

TEST(RecommendCalibrationCellTest, ACellWhoseChainsAllDivergedIsJudgedOnThat) {
  // With every chain diverged lambda_hat 0 is not judged; a cell recorded
  // without its chains (a run that failed) reads the same.
  LlcCalibrationResult result;
  result.cells = {Cell(1e-5, 1, 10), Cell(1e-4, 1, 10),
                  Diverged(Cell(1e-3, 1, 0), 4), Cell(1e-2, 1, 0)};
  result.cells[3].result.chains.clear();
  result.cells[3].result.chains_diverged = 4;
  RecommendCalibrationCell(result);
  EXPECT_EQ(result.recommended, 1);
  EXPECT_EQ(result.cells[2].rejection, "4 chains diverged");
  EXPECT_EQ(result.cells[3].rejection, "4 chains diverged");
}

TEST(RecommendCalibrationCellTest, RunningItAgainGivesTheSameAnswer) {
  LlcCalibrationResult result;
  result.cells = HandMadeGrid();
  RecommendCalibrationCell(result);
  const LlcCalibrationResult first = result;
  RecommendCalibrationCell(result);
  EXPECT_EQ(result.recommended, first.recommended);
  EXPECT_EQ(result.reason, first.reason);
  for (size_t i = 0; i < result.cells.size(); ++i) {
    EXPECT_EQ(result.cells[i].rejection, first.cells[i].rejection) << i;
  }
}

TEST(RecommendCalibrationCellTest, AnEmptyGridRecommendsNothing) {
  LlcCalibrationResult result;
  result.recommended = 3;
  RecommendCalibrationCell(result);
  EXPECT_EQ(result.recommended, -1);
  EXPECT_TRUE(Contains(result.reason, "(0 of 0 cells passed)"))
      << result.reason;
}

}  // namespace
}  // namespace curvd::core
