#include "data/remote.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "common/error.hpp"

#ifdef SIGLIP2_WITH_CURL
#include <curl/curl.h>

#include <mutex>

#if !CURL_AT_LEAST_VERSION(7, 85, 0)
#error "libcurl 7.85 or newer is needed (CURLOPT_PROTOCOLS_STR); configure with -DSIGLIP2_WITH_CURL=OFF"
#endif
#endif

namespace siglip2 {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// RFC 3986 unreserved characters stay, '/' separates the key's segments; everything else is %XX (what S3's
// canonical URI expects of a key).
std::string encode_key(const std::string& key) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : key) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    if (alnum || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace

S3Request s3_request(const std::string& s3_url) {
  if (s3_url.rfind("s3://", 0) != 0) throw Error("shard " + s3_url + ": not an s3:// URL");
  const std::string rest = s3_url.substr(5);
  const size_t slash = rest.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == rest.size())
    throw Error("shard " + s3_url + ": expected s3://BUCKET/KEY");
  const std::string bucket = rest.substr(0, slash), key = rest.substr(slash + 1);
  S3Request r;
  r.region = env("AWS_REGION");
  if (r.region.empty()) r.region = env("AWS_DEFAULT_REGION");
  if (r.region.empty()) r.region = "us-east-1";
  std::string endpoint = env("AWS_ENDPOINT_URL_S3");
  if (endpoint.empty()) endpoint = env("AWS_ENDPOINT_URL");
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  if (endpoint.empty()) {
    r.url = "https://" + bucket + ".s3." + r.region + ".amazonaws.com/" + encode_key(key);
  } else {
    r.url = endpoint + "/" + bucket + "/" + encode_key(key);
  }
  r.sign = !env("AWS_ACCESS_KEY_ID").empty() && !env("AWS_SECRET_ACCESS_KEY").empty();
  return r;
}

#ifdef SIGLIP2_WITH_CURL

bool remote_shards_supported() { return true; }

namespace {

constexpr size_t kMaxBuffered = size_t(8) << 20;  // received, not yet read: the transfer pauses above this

bool transient(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

// "<Code>NoSuchKey</Code>" of an S3 error document, or "".
std::string s3_error_code(const std::string& body) {
  const size_t a = body.find("<Code>");
  if (a == std::string::npos) return "";
  const size_t b = body.find("</Code>", a);
  return b == std::string::npos ? "" : body.substr(a + 6, b - a - 6);
}

}  // namespace

struct RemoteStream::Impl {
  std::string shard;
  RemoteOptions options;
  const std::atomic<bool>* stop = nullptr;
  CURLM* multi = nullptr;
  CURL* easy = nullptr;
  curl_slist* base_headers = nullptr;  // S3: the signing headers
  curl_slist* headers = nullptr;       // those, and If-Match on a resume
  char error_buffer[CURL_ERROR_SIZE] = {};

  std::string buffer;     // received, not yet returned: buffer[taken..]
  size_t taken = 0;
  int64_t position = 0;   // the object's offset of the next byte returned
  int64_t received = 0;   // the object's offset after the last byte received (returned or buffered)
  std::string etag;       // of the first answer: a resume asks for the same version (If-Match)

  // The transfer in flight; its answer's status is read when its headers end.
  bool active = false;
  bool paused = false;
  long status = 0;
  int64_t request_offset = 0;  // its Range start
  int64_t content_range_start = -1, content_range_total = -1;
  std::string response_etag;
  int64_t drop = 0;            // bytes still to drop: a server that answered a Range request with the whole object
  bool progressed = false;     // it delivered a byte of the object
  std::chrono::steady_clock::time_point last_byte;  // of the object received, or the request's start
  std::string error_body;      // of an HTTP error answer (S3's XML names the reason)
  std::string fatal;           // a wrong answer that a retry would not mend

  bool unsigned_s3 = false;  // an s3:// shard requested without credentials
  bool finished = false;
  std::string failed;  // the error that ended the stream: every later read() throws it again
  int failures = 0;    // in a row
  int64_t resumes = 0;
  bool done = false;   // the transfer ended (done_code); acted on once its bytes are read
  CURLcode done_code = CURLE_OK;

  ~Impl() {
    if (multi && easy && active) curl_multi_remove_handle(multi, easy);
    if (easy) curl_easy_cleanup(easy);
    if (multi) curl_multi_cleanup(multi);
    if (headers) curl_slist_free_all(headers);
    if (base_headers) curl_slist_free_all(base_headers);
  }

  // Header lines, one per call. The blank line ends a response's headers: its status decides what the body is.
  static size_t on_header(char* data, size_t size, size_t count, void* self) noexcept {
    auto* s = static_cast<Impl*>(self);
    const size_t n = size * count;
    try {
      const std::string line(data, n);
      if (line.rfind("HTTP/", 0) == 0) {  // a new response (after a redirect or a 100)
        s->content_range_start = s->content_range_total = -1;
        s->response_etag.clear();
        return n;
      }
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        std::string value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
        while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.pop_back();
        if (name == "content-range" && value.rfind("bytes ", 0) == 0) {
          // "bytes START-END/TOTAL", or "bytes */TOTAL" with a 416
          const std::string range = value.substr(6);
          if (range[0] != '*') s->content_range_start = std::atoll(range.c_str());
          const size_t slash = range.find('/');
          if (slash != std::string::npos && range[slash + 1] != '*') s->content_range_total = std::atoll(range.c_str() + slash + 1);
        } else if (name == "etag") {
          s->response_etag = value;
        }
        return n;
      }
      if (line != "\r\n" && line != "\n") return n;
      curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->status);
      if (s->status < 200 || s->status >= 300) return n;  // a redirect, 100, or an error: its body is not the object
      if (s->etag.empty()) s->etag = s->response_etag;
      if (s->request_offset > 0) {
        if (s->status == 200) {
          s->drop = s->request_offset;  // the whole object again
        } else if (s->status != 206 || s->content_range_start != s->request_offset) {
          s->fatal = "asked for bytes " + std::to_string(s->request_offset) + "- and got HTTP " +
                     std::to_string(s->status) + " starting at byte " + std::to_string(s->content_range_start);
          return 0;  // ends the transfer
        }
      }
      return n;
    } catch (...) {
      return 0;
    }
  }

  static size_t on_write(char* data, size_t size, size_t count, void* self) noexcept {
    auto* s = static_cast<Impl*>(self);
    const size_t n = size * count;
    try {
      if (s->status < 200 || s->status >= 300) {
        if (s->error_body.size() < 4096) s->error_body.append(data, std::min<size_t>(n, 4096 - s->error_body.size()));
        return n;
      }
      if (s->buffer.size() - s->taken >= kMaxBuffered) {
        s->paused = true;
        return CURL_WRITEFUNC_PAUSE;  // delivered again after curl_easy_pause(CONT)
      }
      s->last_byte = std::chrono::steady_clock::now();
      const size_t dropped = static_cast<size_t>(std::min<int64_t>(s->drop, static_cast<int64_t>(n)));
      s->drop -= static_cast<int64_t>(dropped);
      if (s->taken > 0 && s->taken == s->buffer.size()) {
        s->buffer.clear();
        s->taken = 0;
      }
      s->buffer.append(data + dropped, n - dropped);
      s->received += static_cast<int64_t>(n - dropped);
      if (n > dropped) s->progressed = true;
      return n;
    } catch (...) {
      return 0;
    }
  }

  void check_stop() const {
    if (stop && stop->load()) throw RemoteError("shard " + shard + ": stopped");
  }

  [[noreturn]] void fail(const std::string& what) {
    failed = "shard " + shard + ": " + what;
    throw RemoteError(failed);
  }

  void start(int64_t offset) {
    request_offset = offset;
    status = 0;
    content_range_start = content_range_total = -1;
    response_etag.clear();
    drop = 0;
    progressed = false;
    paused = false;
    done = false;
    error_body.clear();
    error_buffer[0] = 0;
    last_byte = std::chrono::steady_clock::now();
    const std::string range = std::to_string(offset) + "-";
    curl_easy_setopt(easy, CURLOPT_RANGE, offset > 0 ? range.c_str() : nullptr);  // curl copies the string
    // A resume must continue the same version of the object: If-Match with the first answer's ETag (a store
    // answers 412 when the object was replaced in between).
    if (headers) curl_slist_free_all(headers);
    headers = nullptr;
    for (curl_slist* h = base_headers; h; h = h->next) headers = curl_slist_append(headers, h->data);
    if (offset > 0 && !etag.empty()) headers = curl_slist_append(headers, ("If-Match: " + etag).c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    if (curl_multi_add_handle(multi, easy) != CURLM_OK) fail("libcurl cannot start the transfer");
    active = true;
  }

  // Waits for a failed transfer's retry: the delay doubles with each failure in a row, at most 30 s.
  void back_off() {
    const double ms = std::min(30000.0, static_cast<double>(options.retry_delay_ms) * std::pow(2.0, failures - 1));
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(ms));
    while (std::chrono::steady_clock::now() < until) {
      check_stop();
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          std::chrono::milliseconds(50), until - std::chrono::steady_clock::now()));
    }
  }

  // The transfer ended (`code`): done, retried from the byte reached, or an Error.
  void ended(CURLcode code) {
    if (!active) return;
    curl_multi_remove_handle(multi, easy);
    active = false;
    if (!fatal.empty()) fail(fatal);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (code == CURLE_OK && status >= 200 && status < 300) {
      if (drop > 0) fail("the object is shorter than the " + std::to_string(request_offset) + " bytes already read");
      finished = true;
      return;
    }
    // The connection broke after the last byte: the resume asks for nothing more.
    if (code == CURLE_OK && status == 416 && request_offset > 0 && content_range_total == request_offset) {
      finished = true;
      return;
    }
    std::string what;
    bool retry;
    if (code == CURLE_OK) {
      what = "HTTP " + std::to_string(status);
      const std::string s3 = s3_error_code(error_body);
      if (!s3.empty()) what += " (" + s3 + ")";
      if (status == 412) what += ": the object changed while it was read (If-Match " + etag + ")";
      if (status == 301 && s3 == "PermanentRedirect") what += ": the bucket is in another region (AWS_REGION)";
      if (status == 403 && unsigned_s3) what += " (an unsigned request: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set)";
      retry = status == 408 || status == 429 || status >= 500;
    } else {
      what = error_buffer[0] ? error_buffer : curl_easy_strerror(code);
      retry = transient(code);
    }
    if (progressed) failures = 0;  // a transfer that delivered bytes is not a failure in a row
    ++failures;
    if (!retry) fail(what);
    if (failures > options.retries)
      fail(what + " (gave up after " + std::to_string(failures) + " failed requests in a row)");
    back_off();
    ++resumes;
    start(received);
  }

  // Runs the transfer until bytes are buffered or the object has ended. A transfer's end is acted on (retried,
  // reported) only once the bytes it delivered have been read.
  void pump() {
    if (!failed.empty()) throw RemoteError(failed);
    // Time the loader spent not reading (a full prefetch queue) is not the server's silence.
    last_byte = std::chrono::steady_clock::now();
    while (taken == buffer.size() && !finished) {
      check_stop();
      if (done) {
        done = false;
        ended(done_code);
        continue;
      }
      if (paused) {
        paused = false;
        last_byte = std::chrono::steady_clock::now();  // the wait was ours
        curl_easy_pause(easy, CURLPAUSE_CONT);
      }
      int running = 0;
      const CURLMcode mc = curl_multi_perform(multi, &running);
      if (mc != CURLM_OK) fail(std::string("libcurl: ") + curl_multi_strerror(mc));
      int queued = 0;
      while (CURLMsg* m = curl_multi_info_read(multi, &queued)) {
        if (m->msg == CURLMSG_DONE) {
          done = true;
          done_code = m->data.result;
        }
      }
      if (taken < buffer.size() || done) continue;
      // No byte of the object for read_timeout_s (timed here: libcurl's low-speed check averages over several
      // seconds, and headers or redirects without end would refresh it): the transfer is dropped and resumed.
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - last_byte).count() >
          options.read_timeout_s) {
        std::snprintf(error_buffer, sizeof(error_buffer), "no byte received for %g s", options.read_timeout_s);
        done = true;
        done_code = CURLE_OPERATION_TIMEDOUT;
        continue;
      }
      curl_multi_poll(multi, nullptr, 0, 100, nullptr);
    }
  }
};

RemoteStream::RemoteStream(const std::string& shard, const RemoteOptions& options, const std::atomic<bool>* stop,
                           int64_t offset)
    : impl_(std::make_unique<Impl>()) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  Impl& s = *impl_;
  s.shard = shard;
  s.options = options;
  s.stop = stop;
  std::string url = shard;
  bool s3 = shard.rfind("s3://", 0) == 0;
  S3Request request;
  if (s3) {
    request = s3_request(shard);
    url = request.url;
  }
  s.multi = curl_multi_init();
  s.easy = curl_easy_init();
  if (!s.multi || !s.easy) throw RemoteError("shard " + shard + ": libcurl cannot allocate a transfer");
  CURL* e = s.easy;
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s.error_buffer);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &s);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "siglip2-cpp");
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout_s * 1000));
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!s3) {
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);  // a signed S3 request must not be re-sent elsewhere
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  }
  s.unsigned_s3 = s3 && !request.sign;
  if (s3 && request.sign) {
    const std::string sigv4 = "aws:amz:" + request.region + ":s3";
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(e, CURLOPT_USERNAME, env("AWS_ACCESS_KEY_ID").c_str());
    curl_easy_setopt(e, CURLOPT_PASSWORD, env("AWS_SECRET_ACCESS_KEY").c_str());
    // S3 requires the payload's hash as a header; a GET has none ("UNSIGNED-PAYLOAD" is S3's word for not
    // hashing it), and libcurl signs with the header's value.
    s.base_headers = curl_slist_append(s.base_headers, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    const std::string token = env("AWS_SESSION_TOKEN");
    if (!token.empty()) s.base_headers = curl_slist_append(s.base_headers, ("x-amz-security-token: " + token).c_str());
  }
  s.position = s.received = offset;
  s.start(offset);
  s.pump();
}

RemoteStream::~RemoteStream() = default;

size_t RemoteStream::read(char* out, size_t n) {
  Impl& s = *impl_;
  s.pump();
  const size_t k = std::min(n, s.buffer.size() - s.taken);
  std::memcpy(out, s.buffer.data() + s.taken, k);
  s.taken += k;
  s.position += static_cast<int64_t>(k);
  return k;
}

int64_t RemoteStream::position() const { return impl_->position; }
int64_t RemoteStream::resumes() const { return impl_->resumes; }

#else  // without libcurl

bool remote_shards_supported() { return false; }

struct RemoteStream::Impl {};

RemoteStream::RemoteStream(const std::string& shard, const RemoteOptions&, const std::atomic<bool>*, int64_t) {
  throw RemoteError("shard " + shard + ": this build has no libcurl (apt-get install libcurl4-openssl-dev and rebuild), "
              "or read it through a command: pipe:curl -fsS URL");
}
RemoteStream::~RemoteStream() = default;
size_t RemoteStream::read(char*, size_t) { return 0; }
int64_t RemoteStream::position() const { return 0; }
int64_t RemoteStream::resumes() const { return 0; }

#endif

}  // namespace siglip2
