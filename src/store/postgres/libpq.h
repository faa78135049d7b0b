// libpq, loaded on first use rather than linked.
//
// libpq pulls in about twenty more shared libraries (OpenSSL, Kerberos, LDAP, GnuTLS...);
// linking it doubled the start-up time of every automan command and of every supervisor
// shim, most of which never talk to PostgreSQL. The PostgreSQL backend calls libpq only
// through this table, which LibPq() fills with dlopen("libpq.so.5") the first time a
// postgresql:// store is opened. Types and constants still come from <libpq-fe.h>.
//
// Thread-safe (the table is loaded once, under std::call_once).
#pragma once

#include <libpq-fe.h>

#include "common/status.h"

namespace automan::store_detail {

struct LibPqApi {
  decltype(&::PQclear) PQclear;
  decltype(&::PQcmdTuples) PQcmdTuples;
  decltype(&::PQconnectdbParams) PQconnectdbParams;
  decltype(&::PQconninfoFree) PQconninfoFree;
  decltype(&::PQconninfoParse) PQconninfoParse;
  decltype(&::PQconsumeInput) PQconsumeInput;
  decltype(&::PQerrorMessage) PQerrorMessage;
  decltype(&::PQexec) PQexec;
  decltype(&::PQexecParams) PQexecParams;
  decltype(&::PQexecPrepared) PQexecPrepared;
  decltype(&::PQfinish) PQfinish;
  decltype(&::PQfreemem) PQfreemem;
  decltype(&::PQgetResult) PQgetResult;
  decltype(&::PQgetisnull) PQgetisnull;
  decltype(&::PQgetlength) PQgetlength;
  decltype(&::PQgetvalue) PQgetvalue;
  decltype(&::PQnotifies) PQnotifies;
  decltype(&::PQntuples) PQntuples;
  decltype(&::PQprepare) PQprepare;
  decltype(&::PQputCopyData) PQputCopyData;
  decltype(&::PQputCopyEnd) PQputCopyEnd;
  decltype(&::PQresultErrorField) PQresultErrorField;
  decltype(&::PQresultStatus) PQresultStatus;
  decltype(&::PQsetNoticeProcessor) PQsetNoticeProcessor;
  decltype(&::PQsocket) PQsocket;
  decltype(&::PQstatus) PQstatus;
  decltype(&::PQtransactionStatus) PQtransactionStatus;
};

// The loaded table, or kUnavailable saying libpq could not be loaded (and how to get it).
Result<const LibPqApi*> LoadLibPq();
// The table; only valid after LoadLibPq() succeeded (PostgresStore::Open ensures it).
const LibPqApi& LibPq();

}  // namespace automan::store_detail
