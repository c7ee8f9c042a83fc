#pragma once
// Shards read over HTTP(S) or from S3 and S3-compatible stores (MinIO, Ceph, R2, GCS's interoperability
// endpoint) through libcurl, streamed: bytes reach the tar reader as they arrive, nothing is written to disk.
//
//   http://host/path/shard-000001.tar, https://...     a GET
//   s3://bucket/key                                      a GET signed with AWS Signature Version 4 (libcurl's
//                                                        CURLOPT_AWS_SIGV4) from the usual variables:
//     AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN   credentials (none: an unsigned request, as
//                                                                   `aws s3 --no-sign-request` for public data)
//     AWS_REGION or AWS_DEFAULT_REGION                              region (default us-east-1)
//     AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL                       another endpoint, addressed path-style
//                                                                   (ENDPOINT/bucket/key); without one,
//                                                                   https://bucket.s3.REGION.amazonaws.com/key
// Profiles (~/.aws/config) and instance roles are not read: for those, `pipe:aws s3 cp s3://bucket/key -`.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/config.hpp"

namespace siglip2 {

// data.remote: how HTTP and S3 shards are fetched.
struct RemoteOptions {
  double connect_timeout_s = 30;  // connection and TLS handshake
  double read_timeout_s = 60;     // a transfer that receives no byte for this long is dropped and resumed
  int64_t retries = 5;            // failed requests in a row (connection lost, HTTP 408/429/5xx, a stall)
                                  // before the shard is given up; each retry resumes at the byte reached
  int64_t retry_delay_ms = 500;   // before the first retry; doubles each time, at most 30 s

  template <class V>
  void visit(V& v) {
    v("connect_timeout_s", connect_timeout_s, "seconds to connect (TCP and TLS) before the attempt fails",
      config::greater_than(0.0));
    v("read_timeout_s", read_timeout_s,
      "seconds without a received byte before a transfer is dropped and resumed where it stopped",
      config::greater_than(0.0));
    v("retries", retries,
      "failed requests in a row (lost connection, HTTP 408, 429 or 5xx, a stall) before a shard is given up; each "
      "retry resumes with an HTTP Range request at the byte reached",
      config::at_least<int64_t>(0));
    v("retry_delay_ms", retry_delay_ms, "delay before the first retry (doubles each time, at most 30 s)",
      config::at_least<int64_t>(0));
  }
  std::string check() const { return ""; }
};

// The request an s3:// shard becomes (see the top of this file). Throws siglip2::Error for a URL without a bucket
// or a key. Reads the environment.
struct S3Request {
  std::string url;     // what is requested: the key percent-encoded, '/' kept
  std::string region;
  bool sign = false;   // credentials were found
};
S3Request s3_request(const std::string& s3_url);

// What a RemoteStream throws: the shard is given up after the retries data.remote allows (or at once for an
// answer that a retry would not change, 4xx), so the loader does not retry it again.
class RemoteError : public Error {
 public:
  using Error::Error;
};

// Whether this build reads http(s):// and s3:// shards (it was built with libcurl).
bool remote_shards_supported();

// One object read front to back as a stream. A transfer that fails part-way (connection lost, a stall, HTTP
// 5xx) is retried from the byte reached with "Range: bytes=N-" (a server that answers 200 instead of 206 is
// read from the start and the first N bytes dropped), so the bytes returned are the object's, in order, once.
class RemoteStream {
 public:
  // Sends the request and waits for the first bytes or the end, so that a shard that cannot be had throws here
  // a RemoteError "shard URL: WHY": "HTTP 404 (NoSuchKey)" (S3's error code in brackets), "HTTP 503 (gave up after
  // 6 failed requests in a row)", libcurl's message ("Failed to connect to host port 80 ...", "no byte received
  // for 60 s"). HTTP 4xx other than 408 and 429 are not retried, nor an answer to a Range request that starts
  // elsewhere, nor 412 (the object changed between two requests: a resume sends If-Match with the first
  // answer's ETag). `stop`, when set, ends every wait within 0.2 s (a DNS lookup in progress excepted) with a
  // RemoteError ("stopped"). After an error every read() throws it again.
  RemoteStream(const std::string& shard, const RemoteOptions& options, const std::atomic<bool>* stop = nullptr,
               int64_t offset = 0);
  ~RemoteStream();
  RemoteStream(const RemoteStream&) = delete;
  RemoteStream& operator=(const RemoteStream&) = delete;

  // Copies up to `n` bytes into `out`: the count, 0 at the end of the object. Throws RemoteError when the
  // object cannot be read further within the retries.
  size_t read(char* out, size_t n);
  int64_t position() const;  // the object's offset of the next byte read() returns
  int64_t resumes() const;   // requests made after the first (Range resumes and retries)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace siglip2
