#ifndef CURVD_SERVER_LIST_PAGES_H_
#define CURVD_SERVER_LIST_PAGES_H_

#include <cstddef>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "curvd/v1/curvd_service.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "server/store.h"

namespace curvd::server {

// The encoded bytes of the items of one List page: a page ends before the
// item that would take it past this (curvd_service.proto, View).
inline constexpr size_t kListPageBytes = size_t{4} << 20;
// The largest item a List page holds (alone): the receive limit of curvctl and
// the Python client.
inline constexpr size_t kMaxListItemBytes = size_t{16} << 20;

// Clears every field marked [(full_view_only) = true] in `message` and in
// every message it holds, at any depth.
void ClearFullViewOnlyFields(google::protobuf::Message* message);

// Moves the items of `page` into `out`, in order, after clearing their
// full_view_only fields unless `view` is VIEW_FULL, and sets `next_page_token`:
// the page ends before the first item that would take the encoded bytes of
// `out` past kListPageBytes (its token is then that of the last item moved),
// except that the first item is always moved. RESOURCE_EXHAUSTED naming the
// item when the first is over kMaxListItemBytes. `view` must be a declared
// View (the service refuses others: server/enum_values.h).
template <typename T>
absl::Status FillPage(Page<T> page, curvd::v1::View view,
                      google::protobuf::RepeatedPtrField<T>* out,
                      std::string* next_page_token) {
  size_t bytes = 0;
  for (size_t i = 0; i < page.items.size(); ++i) {
    T& item = page.items[i];
    if (view != curvd::v1::VIEW_FULL) ClearFullViewOnlyFields(&item);
    const size_t size = item.ByteSizeLong();
    if (i == 0 && size > kMaxListItemBytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          item.name(), " is ", size, " bytes, over the ", kMaxListItemBytes,
          " bytes a list page holds: list with view VIEW_BASIC, or Get it "
          "with a receive limit above its size"));
    }
    if (i > 0 && bytes + size > kListPageBytes) {
      *next_page_token = page.item_tokens[i - 1];
      return absl::OkStatus();
    }
    bytes += size;
    *out->Add() = std::move(item);
  }
  *next_page_token = std::move(page.next_page_token);
  return absl::OkStatus();
}

}  // namespace curvd::server

#endif  // CURVD_SERVER_LIST_PAGES_H_
