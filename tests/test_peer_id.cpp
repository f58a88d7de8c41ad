#include <gtest/gtest.h>

#include "gossip/peer_id.h"

using namespace murmur::gossip;

TEST(PeerId, Z85RoundTripsAndMatchesTheSpecVector) {
  // RFC 32's test vector: 8 bytes -> "HelloWorld".
  PeerId id{};
  const uint8_t hello[8] = {0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B};
  std::copy(std::begin(hello), std::end(hello), id.begin());
  const std::string z = to_z85(id);
  ASSERT_EQ(z.size(), 40u);
  EXPECT_EQ(z.substr(0, 10), "HelloWorld");
  EXPECT_EQ(peer_id_from_z85(z), id);
  for (int i = 0; i < 32; ++i) id[i] = static_cast<uint8_t>(255 - 7 * i);
  EXPECT_EQ(peer_id_from_z85(to_z85(id)), id);
  EXPECT_EQ(short_name(id), to_z85(id).substr(0, 8));
}

TEST(PeerId, RejectsMalformedText) {
  EXPECT_FALSE(peer_id_from_z85(""));
  EXPECT_FALSE(peer_id_from_z85(std::string(39, '0')));
  EXPECT_FALSE(peer_id_from_z85(std::string(41, '0')));
  EXPECT_FALSE(peer_id_from_z85(std::string(39, '0') + "~"));
  EXPECT_FALSE(peer_id_from_z85("#####" + std::string(35, '0')));  // group > 2^32 - 1
  EXPECT_FALSE(peer_id_from_z85(std::string(39, '0') + '\0'));
}
