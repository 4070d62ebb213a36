// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! vhost-user-harness (work in progress).
