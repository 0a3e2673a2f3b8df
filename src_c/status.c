/* status.c: English text for each gruinfer_status. */
#include "gru.h"

const char *gruinfer_status_text(gruinfer_status s)
{
    switch (s) {
    case GRUINFER_OK: return "ok";
    case GRUINFER_E_NULL: return "a required pointer is NULL";
    case GRUINFER_E_SIZE: return "a size is out of range or does not match";
    case GRUINFER_E_ATTR: return "an attribute is invalid";
    case GRUINFER_E_ACTIVATION: return "unknown activation";
    case GRUINFER_E_NOMEM: return "out of memory";
    case GRUINFER_E_SEQLEN: return "a sequence length is outside [0, seq_length]";
    case GRUINFER_E_NONFINITE: return "NaN or Inf in the data";
    case GRUINFER_E_KERNEL: return "kernel unknown or not supported by this CPU";
    case GRUINFER_E_PLAN: return "malformed plan step";
    case GRUINFER_E_SLOT: return "slot index out of range";
    case GRUINFER_E_INDEX: return "a token id is not an integer row of the embedding table";
    case GRUINFER_E_FORMAT: return "malformed model file";
    case GRUINFER_E_VERSION: return "model file format version or precision not supported";
    case GRUINFER_E_IO: return "model file cannot be read";
    }
    return "unknown status";
}
