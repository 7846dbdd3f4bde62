"""Talent IP Desk: answers overseas talents' IP questions and hands them to volunteer experts."""
