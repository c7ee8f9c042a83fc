#include "common/cpu_memory.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <thread>
#include <vector>

namespace siglip2 {
namespace {

// The counter sees exactly the bytes of the tensors made after install(), while they live, and the most
// that were alive at once; allocations from several threads balance out.
TEST(CpuMemory, CountsLiveAndPeakTensorBytes) {
  const at::Tensor before_install = torch::ones({1000});  // allocated by the plain allocator
  cpu_memory::install();
  cpu_memory::install();  // a second call changes nothing
  ASSERT_TRUE(cpu_memory::installed());
  const int64_t base = cpu_memory::live_bytes();
  cpu_memory::reset_peak();
  {
    at::Tensor a = torch::empty({1 << 20}, torch::kFloat);  // 4 MiB
    EXPECT_EQ(cpu_memory::live_bytes() - base, 4 << 20);
    {
      at::Tensor b = torch::empty({1 << 18}, torch::kDouble);  // 2 MiB more
      EXPECT_EQ(cpu_memory::live_bytes() - base, 6 << 20);
    }
    EXPECT_EQ(cpu_memory::live_bytes() - base, 4 << 20);
  }
  EXPECT_EQ(cpu_memory::live_bytes(), base);
  EXPECT_EQ(cpu_memory::peak_bytes() - base, 6 << 20);
  cpu_memory::reset_peak();
  EXPECT_EQ(cpu_memory::peak_bytes(), base);

  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([] {
      for (int i = 0; i < 200; ++i) {
        at::Tensor x = torch::empty({1000 + i}, torch::kFloat);
        x.fill_(1);
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(cpu_memory::live_bytes(), base);
  EXPECT_GE(cpu_memory::peak_bytes() - base, 4000);        // at least one thread's tensor was counted
  EXPECT_EQ(before_install.sum().item<float>(), 1000.0f);  // freed later by the allocator that made it
}

}  // namespace
}  // namespace siglip2
